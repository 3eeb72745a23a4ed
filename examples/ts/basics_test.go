package ts_test

import (
	"strings"
	"testing"

	"github.com/dura-dev/dura/examples/twins"
)

// TestCounter: the checks of examples.TestCounter, on the guide's Counter.
func TestCounter(t *testing.T) {
	twins.Counter(t, startNode(t, "", "counter"), "Counter")
}

// TestAccounts: the checks of examples.TestAccounts, on the guide's
// updateBalance.
func TestAccounts(t *testing.T) {
	twins.Accounts(t, startNode(t, "", "accounts"), "Accounts")
}

// TestDocumentsOptimisticLocking: the checks of its Go twin.
func TestDocumentsOptimisticLocking(t *testing.T) {
	twins.Documents(t, startNode(t, "", "documents"), "Documents")
}

type versionedUser struct {
	ID    string  `json:"id"`
	Name  string  `json:"name"`
	Email *string `json:"email"`
}

func versionOf(n *tsNode, name string) int {
	n.t.Helper()
	var v struct{ Version int }
	n.call("GET", "VersionedDO", name, "/version", nil, 200, &v)
	return v.Version
}

// TestVersionedUpgradeInPlace: its Go twin restarts the node with a newer
// build; here a new version of the module is deployed, which resets the
// live object, and its constructor migrates the stored rows in place.
func TestVersionedUpgradeInPlace(t *testing.T) {
	n := startNode(t, "")
	v3 := source(t, "versioned")
	n.deploy("versioned", strings.Replace(v3, "CURRENT_VERSION = 3", "CURRENT_VERSION = 1", 1))
	n.call("POST", "VersionedDO", "dir", "/users", map[string]string{"id": "u1", "name": "Ada"}, 201, nil)
	n.callErr("POST", "VersionedDO", "dir", "/users", map[string]string{"id": "u2", "name": "Bob", "email": "b@x"}, 400, "BAD_REQUEST")
	n.callErr("GET", "VersionedDO", "dir", "/users?email=b@x", nil, 400, "BAD_REQUEST")
	if v := versionOf(n, "dir"); v != 1 {
		t.Fatalf("version %d at v1", v)
	}
	if cols := n.sqlStrings("VersionedDO", "dir", `SELECT name FROM pragma_table_info('users')`); len(cols) != 2 {
		t.Fatalf("v1 columns %v", cols)
	}

	n.deploy("versioned", v3)
	if v := versionOf(n, "dir"); v != 3 {
		t.Fatalf("version %d after upgrade", v)
	}
	var u versionedUser
	n.call("GET", "VersionedDO", "dir", "/users/u1", nil, 200, &u)
	if u.Name != "Ada" || u.Email != nil {
		t.Fatalf("user kept through the upgrade: %+v", u)
	}
	cols := n.sqlStrings("VersionedDO", "dir", `SELECT name FROM pragma_table_info('users')`)
	if len(cols) != 3 || cols[2] != "email" {
		t.Fatalf("columns %v", cols)
	}
	idx := n.sqlStrings("VersionedDO", "dir", `SELECT name FROM pragma_index_list('users') WHERE origin = 'c'`)
	if len(idx) != 1 || idx[0] != "idx_users_email" {
		t.Fatalf("indexes %v", idx)
	}
	n.call("POST", "VersionedDO", "dir", "/users", map[string]string{"id": "u2", "name": "Bob", "email": "b@x"}, 201, nil)
	var found struct{ Users []versionedUser }
	n.call("GET", "VersionedDO", "dir", "/users?email=b@x", nil, 200, &found)
	if len(found.Users) != 1 || found.Users[0].ID != "u2" {
		t.Fatalf("by email: %+v", found.Users)
	}
	n.callErr("POST", "VersionedDO", "dir", "/users", map[string]string{"id": "u1", "name": "dup"}, 409, "CONSTRAINT")
	n.callErr("GET", "VersionedDO", "dir", "/users/ghost", nil, 404, "NOT_FOUND")

	// A new object gets every version at once.
	if v := versionOf(n, "new"); v != 3 {
		t.Fatalf("fresh object at version %d", v)
	}
}

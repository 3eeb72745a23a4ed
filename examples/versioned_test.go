package examples_test

import (
	"testing"

	"github.com/dura-dev/dura/examples"
	"github.com/dura-dev/dura/node"
)

type versionedUser struct {
	ID    string  `json:"id"`
	Name  string  `json:"name"`
	Email *string `json:"email"`
}

func versionOf(n *testNode, name string) int {
	n.t.Helper()
	var v struct{ Version int }
	n.call("GET", "versioned", name, "/version", nil, 200, &v)
	return v.Version
}

// TestVersionedUpgradeInPlace writes with a build at schema v1, restarts
// the node on the same data with the v3 build, and checks the object was
// migrated where it lies, keeping its rows.
func TestVersionedUpgradeInPlace(t *testing.T) {
	dir := t.TempDir()
	atV1 := func(rt *node.Runtime) error { return rt.Register("versioned", examples.NewVersioned(1)) }

	old := startNode(t, dir, atV1)
	old.call("POST", "versioned", "dir", "/users", map[string]string{"id": "u1", "name": "Ada"}, 201, nil)
	old.callErr("POST", "versioned", "dir", "/users", map[string]string{"id": "u2", "name": "Bob", "email": "b@x"}, 400, "BAD_REQUEST")
	old.callErr("GET", "versioned", "dir", "/users?email=b@x", nil, 400, "BAD_REQUEST")
	if v := versionOf(old, "dir"); v != 1 {
		t.Fatalf("version %d at v1", v)
	}
	if cols := old.sqlStrings("versioned", "dir", `SELECT name FROM pragma_table_info('users')`); len(cols) != 2 {
		t.Fatalf("v1 columns %v", cols)
	}
	old.stop()

	n := startNode(t, dir, nil) // RegisterAll: the latest schema
	if v := versionOf(n, "dir"); v != examples.VersionedLatest {
		t.Fatalf("version %d after upgrade, want %d", v, examples.VersionedLatest)
	}
	var u versionedUser
	n.call("GET", "versioned", "dir", "/users/u1", nil, 200, &u)
	if u.Name != "Ada" || u.Email != nil {
		t.Fatalf("user kept through the upgrade: %+v", u)
	}
	cols := n.sqlStrings("versioned", "dir", `SELECT name FROM pragma_table_info('users')`)
	if len(cols) != 3 || cols[2] != "email" {
		t.Fatalf("columns %v", cols)
	}
	idx := n.sqlStrings("versioned", "dir", `SELECT name FROM pragma_index_list('users') WHERE origin = 'c'`)
	if len(idx) != 1 || idx[0] != "idx_users_email" {
		t.Fatalf("indexes %v", idx)
	}

	n.call("POST", "versioned", "dir", "/users", map[string]string{"id": "u2", "name": "Bob", "email": "b@x"}, 201, nil)
	var found struct{ Users []versionedUser }
	n.call("GET", "versioned", "dir", "/users?email=b@x", nil, 200, &found)
	if len(found.Users) != 1 || found.Users[0].ID != "u2" {
		t.Fatalf("by email: %+v", found.Users)
	}
	n.callErr("POST", "versioned", "dir", "/users", map[string]string{"id": "u1", "name": "dup"}, 409, "CONSTRAINT")
	n.callErr("GET", "versioned", "dir", "/users/ghost", nil, 404, "NOT_FOUND")
	n.noAdviceWarnings("versioned", "dir")
}

// TestVersionedFreshObject checks a new object gets every version at once.
func TestVersionedFreshObject(t *testing.T) {
	n := newNode(t)
	if v := versionOf(n, "new"); v != examples.VersionedLatest {
		t.Fatalf("version %d", v)
	}
	var u versionedUser
	n.call("POST", "versioned", "new", "/users", map[string]string{"id": "u", "name": "N", "email": "n@x"}, 201, nil)
	n.call("GET", "versioned", "new", "/users/u", nil, 200, &u)
	if u.Email == nil || *u.Email != "n@x" {
		t.Fatalf("user %+v", u)
	}
}

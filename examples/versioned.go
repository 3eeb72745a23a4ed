package examples

import (
	"fmt"
	"net/http"

	"github.com/dura-dev/dura/node"
)

// VersionedLatest is the newest schema version of class "versioned".
const VersionedLatest = 3

// versionedMigrations are the guide's three schema versions. Each runs
// once per object, in its own transaction, and is recorded by the SDK in
// _dura_schema_version; never edit one that has shipped, add the next.
var versionedMigrations = []node.Migration{
	{Version: 1, Up: func(s *node.Storage) error {
		_, err := s.Exec(`CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT NOT NULL)`)
		return err
	}},
	{Version: 2, Up: func(s *node.Storage) error {
		_, err := s.Exec(`ALTER TABLE users ADD COLUMN email TEXT`)
		return err
	}},
	{Version: 3, Up: func(s *node.Storage) error {
		_, err := s.Exec(`CREATE INDEX idx_users_email ON users(email)`)
		return err
	}},
}

// Versioned is a user directory whose schema evolves by migrations. An
// object created by an older build is upgraded in place the next time it
// is activated by a newer one.
//
//	POST /users         {id,name[,email]}  -> 201 {"id","name","email"} (email needs schema v2)
//	GET  /users/{id}                       -> {"id","name","email"}
//	GET  /users?email=E                    -> {"users":[...]} (schema v2; indexed from v3)
//	GET  /version                          -> {"version":n}
type Versioned struct {
	st      *node.State
	r       *router
	version int // the schema version of this activation's database
}

// NewVersioned returns the constructor of class "versioned" that migrates
// objects up to maxVersion (1..VersionedLatest). Builds with a lower
// maxVersion stand in for older releases in tests. An object already past
// maxVersion is left as it is: migrations only go up. It panics if
// maxVersion is out of range, a mistake in the caller's code.
func NewVersioned(maxVersion int) node.Constructor {
	if maxVersion < 1 || maxVersion > VersionedLatest {
		panic(fmt.Sprintf("examples: versioned schema version %d is not in 1..%d", maxVersion, VersionedLatest))
	}
	ms := versionedMigrations[:maxVersion]
	return func(st *node.State) (node.Object, error) {
		v := &Versioned{st: st, r: newRouter()}
		err := st.BlockConcurrencyWhile(func() error {
			if err := st.Storage().Migrate(ms...); err != nil {
				return err
			}
			var err error
			v.version, err = st.Storage().SchemaVersion()
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("versioned schema: %w", err)
		}
		v.r.handle("POST /users", v.add)
		v.r.handle("GET /users/{id}", v.get)
		v.r.handle("GET /users", v.byEmail)
		v.r.handle("GET /version", v.getVersion)
		return v, nil
	}
}

// Fetch implements node.Object.
func (v *Versioned) Fetch(w http.ResponseWriter, r *http.Request) error { return v.r.serve(w, r) }

type versionedUser struct {
	ID    string  `json:"id"`
	Name  string  `json:"name"`
	Email *string `json:"email"`
}

func (v *Versioned) hasEmail() error {
	if v.version < 2 {
		return fmt.Errorf("%w: email needs schema version 2, this object is at %d", node.ErrBadRequest, v.version)
	}
	return nil
}

func (v *Versioned) add(w http.ResponseWriter, r *http.Request) error {
	var u versionedUser
	if err := readJSON(r, &u); err != nil {
		return err
	}
	if u.ID == "" {
		return missing("id")
	}
	if u.Name == "" {
		return missing("name")
	}
	var err error
	if u.Email != nil {
		if err := v.hasEmail(); err != nil {
			return err
		}
		_, err = v.st.Storage().Exec(`INSERT INTO users (id, name, email) VALUES (?, ?, ?)`, u.ID, u.Name, *u.Email)
	} else {
		_, err = v.st.Storage().Exec(`INSERT INTO users (id, name) VALUES (?, ?)`, u.ID, u.Name)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, u)
}

// columns is the user projection this schema version can answer.
func (v *Versioned) columns() string {
	if v.version < 2 {
		return "id, name, NULL"
	}
	return "id, name, email"
}

func (v *Versioned) get(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	cur, err := v.st.Storage().Exec(`SELECT `+v.columns()+` FROM users WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if !cur.Next() {
		return fmt.Errorf("%w: no user %q", node.ErrNotFound, id)
	}
	var u versionedUser
	var email any
	if err := cur.Scan(&u.ID, &u.Name, &email); err != nil {
		return err
	}
	if s, ok := email.(string); ok {
		u.Email = &s
	}
	return writeJSON(w, http.StatusOK, u)
}

func (v *Versioned) byEmail(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	email := q.Get("email")
	if email == "" {
		return missing("email")
	}
	if err := v.hasEmail(); err != nil {
		return err
	}
	limit, err := queryLimit(q)
	if err != nil {
		return err
	}
	cur, err := v.st.Storage().Exec(`SELECT id, name, email FROM users WHERE email = ? ORDER BY id LIMIT ?`, email, limit)
	if err != nil {
		return err
	}
	users := make([]versionedUser, 0, cur.Len())
	for cur.Next() {
		var u versionedUser
		var e string
		if err := cur.Scan(&u.ID, &u.Name, &e); err != nil {
			return err
		}
		u.Email = &e
		users = append(users, u)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"users": users})
}

func (v *Versioned) getVersion(w http.ResponseWriter, r *http.Request) error {
	n, err := v.st.Storage().SchemaVersion()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]int{"version": n})
}

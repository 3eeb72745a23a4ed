package examples

import (
	"fmt"
	"net/http"

	"github.com/dura-dev/dura/node"
)

const documentsSchema = `
CREATE TABLE IF NOT EXISTS documents (
	id TEXT PRIMARY KEY,
	content TEXT NOT NULL,
	version INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
)`

// Documents stores documents under optimistic locking. Events of one
// object never interleave, so the lock is not about concurrent handlers:
// it stops a client from overwriting a change it never read, between its
// GET and its PUT.
//
//	GET /docs/{id}                          -> {"id","content","version","updated_at"}
//	PUT /docs/{id} {content,version}        -> {"id","content","version","updated_at"}
//
// version is the version the client read: 0 creates the document (201,
// version 1; 409 if it exists), n updates a document at version n to n+1
// (404 if missing, 409 CONSTRAINT with the current version if it moved on).
type Documents struct {
	st *node.State
	r  *router
}

// NewDocuments is the constructor of class "documents".
func NewDocuments(st *node.State) (node.Object, error) {
	err := st.BlockConcurrencyWhile(func() error {
		_, err := st.Storage().Exec(documentsSchema)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("documents schema: %w", err)
	}
	d := &Documents{st: st, r: newRouter()}
	d.r.handle("GET /docs/{id}", d.get)
	d.r.handle("PUT /docs/{id}", d.put)
	return d, nil
}

// Fetch implements node.Object.
func (d *Documents) Fetch(w http.ResponseWriter, r *http.Request) error { return d.r.serve(w, r) }

type document struct {
	ID        string `json:"id"`
	Content   string `json:"content"`
	Version   int64  `json:"version"`
	UpdatedAt int64  `json:"updated_at"`
}

// load reads a document; ok is false if there is none.
func (d *Documents) load(id string) (doc document, ok bool, err error) {
	cur, err := d.st.Storage().Exec(`SELECT id, content, version, updated_at FROM documents WHERE id = ?`, id)
	if err != nil || !cur.Next() {
		return doc, false, err
	}
	err = cur.Scan(&doc.ID, &doc.Content, &doc.Version, &doc.UpdatedAt)
	return doc, err == nil, err
}

func (d *Documents) get(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	doc, ok, err := d.load(id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: no document %q", node.ErrNotFound, id)
	}
	return writeJSON(w, http.StatusOK, doc)
}

func (d *Documents) put(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	var req struct {
		Content *string `json:"content"`
		Version *int64  `json:"version"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	// Both are required: a missing version must not read as 0 (create)
	// and a missing content must not blank the document.
	if req.Content == nil {
		return missing("content")
	}
	if req.Version == nil || *req.Version < 0 {
		return fmt.Errorf("%w: version (the version you read, 0 to create) is required", node.ErrBadRequest)
	}
	now := d.st.Now().UnixMilli()
	s := d.st.Storage()
	if *req.Version == 0 {
		cur, err := s.Exec(`
			INSERT INTO documents (id, content, version, updated_at) VALUES (?, ?, 1, ?)
			ON CONFLICT(id) DO NOTHING`, id, *req.Content, now)
		if err != nil {
			return err
		}
		if cur.Changes() == 0 {
			return d.conflict(id, 0)
		}
		return writeJSON(w, http.StatusCreated, document{ID: id, Content: *req.Content, Version: 1, UpdatedAt: now})
	}
	// The version test and the write are one statement: the row changes
	// only if it is still at the version the client read.
	cur, err := s.Exec(`
		UPDATE documents SET content = ?, version = version + 1, updated_at = ?
		WHERE id = ? AND version = ?`, *req.Content, now, id, *req.Version)
	if err != nil {
		return err
	}
	if cur.Changes() == 0 {
		return d.conflict(id, *req.Version)
	}
	return writeJSON(w, http.StatusOK, document{ID: id, Content: *req.Content, Version: *req.Version + 1, UpdatedAt: now})
}

// conflict explains a write that changed nothing: no such document, or
// one at another version than the client read.
func (d *Documents) conflict(id string, read int64) error {
	doc, ok, err := d.load(id)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%w: no document %q (create it with version 0)", node.ErrNotFound, id)
	case read == 0:
		return fmt.Errorf("%w: document %q already exists at version %d", node.ErrConflict, id, doc.Version)
	}
	return fmt.Errorf("%w: document %q is at version %d, not %d: read it again", node.ErrConflict, id, doc.Version, read)
}

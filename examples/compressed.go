package examples

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"

	"github.com/dura-dev/dura/node"
)

// compressedSchema is the guide's compressed-storage table, with the raw
// size kept so stats need no decompression and reads can bound it, and
// the content type so a read answers what was written.
const compressedSchema = `
CREATE TABLE IF NOT EXISTS data (
	key TEXT PRIMARY KEY,
	value BLOB NOT NULL,
	compressed INTEGER NOT NULL,
	raw_size INTEGER NOT NULL,
	content_type TEXT NOT NULL DEFAULT 'application/octet-stream'
)`

const (
	// compressMin is the size below which gzip's ~20 bytes of framing
	// rarely pay for themselves.
	compressMin = 1000
	// compressedMaxRaw caps an upload; what is stored must also fit the
	// sandbox's 2 MiB value limit, so a value this large is accepted only
	// if it compresses well.
	compressedMaxRaw = 8 << 20
)

// Compressed stores opaque values, gzip-compressed when that helps.
//
//	PUT    /{key}        any body   -> {"key","raw_size","stored_size","compressed"}
//	GET    /{key}                   -> the original bytes, with their Content-Type
//	GET    /stats/{key}             -> {"key","raw_size","stored_size","compressed"}
//	DELETE /{key}                   -> {"deleted":bool}
//
// A value is compressed if it is over 1000 bytes and gzip makes it
// smaller; otherwise it is stored as is.
type Compressed struct {
	st *node.State
	r  *router
}

// NewCompressed is the constructor of class "compressed".
func NewCompressed(st *node.State) (node.Object, error) {
	err := st.BlockConcurrencyWhile(func() error {
		_, err := st.Storage().Exec(compressedSchema)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("compressed schema: %w", err)
	}
	c := &Compressed{st: st, r: newRouter()}
	c.r.handle("PUT /{key}", c.put)
	c.r.handle("GET /{key}", c.get)
	c.r.handle("DELETE /{key}", c.del)
	c.r.handle("GET /stats/{key}", c.stats)
	return c, nil
}

// Fetch implements node.Object.
func (c *Compressed) Fetch(w http.ResponseWriter, r *http.Request) error { return c.r.serve(w, r) }

type compressedStats struct {
	Key        string `json:"key"`
	RawSize    int64  `json:"raw_size"`
	StoredSize int64  `json:"stored_size"`
	Compressed bool   `json:"compressed"`
}

func compress(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (c *Compressed) put(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	raw, err := readBody(r, compressedMaxRaw)
	if err != nil {
		return err
	}
	stored, isCompressed := raw, false
	if len(raw) > compressMin {
		z, err := compress(raw)
		if err != nil {
			return fmt.Errorf("compress %q: %w", key, err)
		}
		if len(z) < len(raw) {
			stored, isCompressed = z, true
		}
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	// An incompressible value over the sandbox's value limit fails here
	// with TOO_LARGE.
	_, err = c.st.Storage().Exec(`
		INSERT INTO data (key, value, compressed, raw_size, content_type) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value, compressed = excluded.compressed,
			raw_size = excluded.raw_size, content_type = excluded.content_type`,
		key, stored, isCompressed, len(raw), ct)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, compressedStats{
		Key: key, RawSize: int64(len(raw)), StoredSize: int64(len(stored)), Compressed: isCompressed})
}

func (c *Compressed) get(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	cur, err := c.st.Storage().Exec(`SELECT value, compressed, raw_size, content_type FROM data WHERE key = ?`, key)
	if err != nil {
		return err
	}
	if !cur.Next() {
		return fmt.Errorf("%w: no value %q", node.ErrNotFound, key)
	}
	var value []byte
	var isCompressed bool
	var rawSize int64
	var ct string
	if err := cur.Scan(&value, &isCompressed, &rawSize, &ct); err != nil {
		return err
	}
	if isCompressed {
		zr, err := gzip.NewReader(bytes.NewReader(value))
		if err != nil {
			return fmt.Errorf("decompress %q: %w", key, err)
		}
		// raw_size bounds the output, so a corrupt or hostile row
		// cannot inflate without limit.
		raw, err := io.ReadAll(io.LimitReader(zr, rawSize+1))
		if err != nil {
			return fmt.Errorf("decompress %q: %w", key, err)
		}
		if int64(len(raw)) != rawSize {
			return fmt.Errorf("decompress %q: got %d bytes, expected %d", key, len(raw), rawSize)
		}
		value = raw
	}
	w.Header().Set("Content-Type", ct)
	_, err = w.Write(value)
	return err
}

func (c *Compressed) stats(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	cur, err := c.st.Storage().Exec(`SELECT raw_size, length(value), compressed FROM data WHERE key = ?`, key)
	if err != nil {
		return err
	}
	if !cur.Next() {
		return fmt.Errorf("%w: no value %q", node.ErrNotFound, key)
	}
	s := compressedStats{Key: key}
	if err := cur.Scan(&s.RawSize, &s.StoredSize, &s.Compressed); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s)
}

func (c *Compressed) del(w http.ResponseWriter, r *http.Request) error {
	cur, err := c.st.Storage().Exec(`DELETE FROM data WHERE key = ?`, r.PathValue("key"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]bool{"deleted": cur.Changes() > 0})
}

package examples_test

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
)

type compressedStats struct {
	Key        string `json:"key"`
	RawSize    int64  `json:"raw_size"`
	StoredSize int64  `json:"stored_size"`
	Compressed bool   `json:"compressed"`
}

func TestCompressed(t *testing.T) {
	n := newNode(t)
	noise := make([]byte, 5000)
	rand.Read(noise)
	cases := []struct {
		name       string
		body       []byte
		compressed bool
		maxStored  int64 // 0: no bound beyond the raw size
	}{
		{"small text stays raw", []byte("hello, world"), false, 0},
		{"exactly the threshold stays raw", bytes.Repeat([]byte("a"), 1000), false, 0},
		{"large repetitive JSON shrinks", []byte("[" + strings.Repeat(`{"user":"alice","event":"page_view","ok":true},`, 4000) + "0]"), true, 4000},
		{"incompressible noise stays raw", noise, false, 0},
		{"empty value", []byte{}, false, 0},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := "/k" + string(rune('a'+i))
			var put compressedStats
			n.call("PUT", "compressed", "z", key, c.body, 200, &put)
			var stats compressedStats
			n.call("GET", "compressed", "z", "/stats"+key, nil, 200, &stats)
			if stats != put {
				t.Fatalf("stats %+v differ from the PUT answer %+v", stats, put)
			}
			if stats.RawSize != int64(len(c.body)) || stats.Compressed != c.compressed {
				t.Fatalf("stats %+v for %d bytes", stats, len(c.body))
			}
			if !c.compressed && stats.StoredSize != stats.RawSize {
				t.Fatalf("raw value stored in %d bytes, not %d", stats.StoredSize, stats.RawSize)
			}
			if c.maxStored > 0 && stats.StoredSize > c.maxStored {
				t.Fatalf("%d bytes stored in %d, want at most %d", stats.RawSize, stats.StoredSize, c.maxStored)
			}
			if got := n.sqlInt("compressed", "z", `SELECT length(value) FROM data WHERE key = ?`, key[1:]); got != stats.StoredSize {
				t.Fatalf("length(value) = %d, stats say %d", got, stats.StoredSize)
			}
			r := n.call("GET", "compressed", "z", key, nil, 200, nil)
			if !bytes.Equal(r.body, c.body) {
				t.Fatalf("read back %d bytes that differ from the %d written", len(r.body), len(c.body))
			}
		})
	}

	t.Run("content type is kept", func(t *testing.T) {
		req, err := http.NewRequest("PUT", n.url+"/objects/compressed/z/typed", strings.NewReader("a,b\n1,2\n"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("PUT status %d", resp.StatusCode)
		}
		r := n.call("GET", "compressed", "z", "/typed", nil, 200, nil)
		if ct := r.header.Get("Content-Type"); ct != "text/csv" || string(r.body) != "a,b\n1,2\n" {
			t.Fatalf("Content-Type %q, body %q", ct, r.body)
		}
		n.call("PUT", "compressed", "z", "/untyped", "x", 200, nil)
		if ct := n.call("GET", "compressed", "z", "/untyped", nil, 200, nil).header.Get("Content-Type"); ct != "application/octet-stream" {
			t.Fatalf("default Content-Type %q", ct)
		}
	})
	t.Run("delete", func(t *testing.T) {
		var got map[string]bool
		n.call("DELETE", "compressed", "z", "/ka", nil, 200, &got)
		if !got["deleted"] {
			t.Fatal("not deleted")
		}
		n.callErr("GET", "compressed", "z", "/ka", nil, 404, "NOT_FOUND")
		n.callErr("GET", "compressed", "z", "/stats/ka", nil, 404, "NOT_FOUND")
	})
	n.noAdviceWarnings("compressed", "z")
}

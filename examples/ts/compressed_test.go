package ts_test

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

type compressedStats struct {
	Key        string `json:"key"`
	RawSize    int    `json:"raw_size"`
	StoredSize int    `json:"stored_size"`
	Compressed bool   `json:"compressed"`
}

// TestCompressedData: the guide's storeCompressedData through the
// routes of the Go class "compressed": small values stored as they are,
// large ones encoded, both read back as written.
func TestCompressedData(t *testing.T) {
	n := startNode(t, "", "compressed")
	small := map[string]any{"a": 1.0, "b": "two"}
	var st compressedStats
	n.call("PUT", "CompressedDO", "c", "/small", small, 200, &st)
	smallJSON, _ := json.Marshal(small) // what JSON.stringify makes of it too
	if st != (compressedStats{Key: "small", RawSize: len(smallJSON), StoredSize: len(smallJSON), Compressed: false}) {
		t.Fatalf("small: %+v", st)
	}
	big := map[string]any{"text": strings.Repeat("Durable objects, café. ", 100), "n": 42.0}
	raw, _ := json.Marshal(big)
	chars := utf8.RuneCount(raw) // JavaScript's length: one per character here
	n.call("PUT", "CompressedDO", "c", "/big", big, 200, &st)
	if !st.Compressed || st.RawSize != chars || st.StoredSize != base64.StdEncoding.EncodedLen(chars) {
		t.Fatalf("big (%d characters of JSON): %+v", chars, st)
	}
	for key, want := range map[string]any{"small": small, "big": big} {
		var got map[string]any
		n.call("GET", "CompressedDO", "c", "/"+key, nil, 200, &got)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s read back %v", key, got)
		}
	}
	var again compressedStats
	n.call("GET", "CompressedDO", "c", "/stats/big", nil, 200, &again)
	if again != st {
		t.Fatalf("stats %+v, stored %+v", again, st)
	}
	// What the table holds: the big value encoded and flagged.
	if rows := n.sql("CompressedDO", "c", "SELECT compressed, substr(value, 1, 8) FROM data WHERE key = 'big'"); rows[0][0] != 1.0 || rows[0][1] != "eyJuIjo0" {
		t.Fatalf("stored %v", rows)
	}
	n.callErr("GET", "CompressedDO", "c", "/missing", nil, 404, "NOT_FOUND")
	n.callErr("PUT", "CompressedDO", "c", "/bad", "not json", 400, "BAD_REQUEST")
	// Past 1 000 characters, btoa refuses what is not Latin-1, as the
	// guide's code would; nothing is stored.
	n.callErr("PUT", "CompressedDO", "c", "/euro", map[string]any{"text": strings.Repeat("€", 1200)}, 500, "EXCEPTION")
	n.callErr("GET", "CompressedDO", "c", "/bad", nil, 404, "NOT_FOUND")
	n.callErr("GET", "CompressedDO", "c", "/euro", nil, 404, "NOT_FOUND")
}

package node

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/dura-dev/dura/objectstore"
)

func TestPackedPagesRoundTrip(t *testing.T) {
	const size = 4096
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, size)
	for i := range random {
		random[i] = byte(rnd.IntN(255) + 1)
	}
	sparse := make([]byte, size)
	copy(sparse[100:], "header")
	copy(sparse[size-40:], "cell content at the end of the page")
	shortRuns := bytes.Repeat([]byte{1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}, size/12+1)[:size]
	trailing := bytes.Repeat([]byte{7}, size)
	for i := size - 5; i < size; i++ {
		trailing[i] = 0
	}
	leading := make([]byte, size)
	leading[size-1] = 9
	cases := []struct {
		name    string
		page    []byte
		maxSize int // packed size at most
	}{
		{"all zeros", make([]byte, size), 4},
		{"no zeros", random, size + 8},
		{"sparse", sparse, 80},
		{"zero runs shorter than minZeroRun", shortRuns, size + 8},
		{"short trailing zeros", trailing, size + 8},
		{"leading zeros", leading, 8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			packed := appendPackedPage(nil, tc.page)
			if len(packed) > tc.maxSize {
				t.Errorf("packed to %d bytes, want at most %d", len(packed), tc.maxSize)
			}
			got, rest, err := unpackPage(append(packed, "next"...), size)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.page) {
				t.Fatal("unpacked page differs")
			}
			if string(rest) != "next" {
				t.Fatalf("rest %q, want what follows the page", rest)
			}
		})
	}
}

func TestMalformedPackedPages(t *testing.T) {
	uv := func(vs ...uint64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.AppendUvarint(b, v)
		}
		return b
	}
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"zeros past the page", uv(513, 0)},
		{"literal past the page", append(uv(0, 600), make([]byte, 600)...)},
		{"literal longer than the input", append(uv(10, 20), 1, 2, 3)},
		{"a pair that covers nothing", uv(0, 0, 512, 0)},
		{"short of the page", uv(100, 0)},
		{"bad varint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := unpackPage(tc.b, 512); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// A commit entry logged before pages were packed still decodes, and a
// packed one decodes to the same record.
func TestCommitEntriesPackedAndNot(t *testing.T) {
	page1, page2 := make([]byte, 512), make([]byte, 512)
	copy(page1[20:], "first page")
	for i := range page2 {
		page2[i] = byte(i)
	}
	rec := objectstore.Record{Tx: 7, PageSize: 512, DBPages: 2, Pages: map[uint32][]byte{1: page1, 2: page2}}
	e := logEntry{kind: entryCommit, id: "obj", partition: 5, at: 1234, rec: rec}
	packed := e.encode()

	// The layout before packing: the count without packedPages, whole images.
	var old []byte
	old = append(old, entryCommit)
	old = binary.LittleEndian.AppendUint32(old, 5)
	old = binary.LittleEndian.AppendUint64(old, 1234)
	old = append(old, 3)
	old = append(old, "obj"...)
	old = binary.LittleEndian.AppendUint64(old, 7)
	old = binary.LittleEndian.AppendUint32(old, 512)
	old = binary.LittleEndian.AppendUint32(old, 2)
	old = binary.LittleEndian.AppendUint32(old, 2)
	old = binary.LittleEndian.AppendUint32(old, 1)
	old = append(old, page1...)
	old = binary.LittleEndian.AppendUint32(old, 2)
	old = append(old, page2...)

	if len(packed) >= len(old) {
		t.Errorf("packed entry %d bytes, unpacked %d", len(packed), len(old))
	}
	for name, b := range map[string][]byte{"packed": packed, "unpacked": old} {
		got, err := decodeEntry(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.id != "obj" || got.partition != 5 || got.at != 1234 || got.rec.Tx != 7 || got.rec.DBPages != 2 || len(got.rec.Pages) != 2 ||
			!bytes.Equal(got.rec.Pages[1], page1) || !bytes.Equal(got.rec.Pages[2], page2) {
			t.Fatalf("%s: decoded %+v", name, got)
		}
	}
	for _, bad := range [][]byte{packed[:len(packed)-1], append(packed, 0)} {
		if _, err := decodeEntry(bad); err == nil {
			t.Fatal("a packed entry cut short or with trailing bytes decoded")
		}
	}
}

func FuzzUnpackPage(f *testing.F) {
	page := make([]byte, 512)
	copy(page[40:], "some cells")
	f.Add(appendPackedPage(nil, page))
	f.Add([]byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, _, err := unpackPage(b, 512)
		if err != nil {
			return
		}
		again, rest, err := unpackPage(appendPackedPage(nil, got), 512)
		if err != nil || len(rest) != 0 || !bytes.Equal(again, got) {
			t.Fatalf("repacking a decoded page: %v", err)
		}
	})
}

package objectstore

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
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
			packed := AppendPackedPage(nil, tc.page)
			if len(packed) > tc.maxSize {
				t.Errorf("packed to %d bytes, want at most %d", len(packed), tc.maxSize)
			}
			got, rest, err := UnpackPage(append(packed, "next"...), size)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.page) {
				t.Fatal("unpacked page differs")
			}
			if string(rest) != "next" {
				t.Fatalf("rest %q, want what follows the page", rest)
			}
			if n, err := PackedPageLen(append(packed, "next"...), size); err != nil || n != len(packed) {
				t.Fatalf("PackedPageLen = %d, %v; want %d", n, err, len(packed))
			}
			dirty := bytes.Repeat([]byte{0xee}, size)
			if rest, err := UnpackPageInto(dirty, packed); err != nil || len(rest) != 0 || !bytes.Equal(dirty, tc.page) {
				t.Fatalf("unpacked into a used buffer: %v, %d left, equal %v", err, len(rest), bytes.Equal(dirty, tc.page))
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
			if _, _, err := UnpackPage(tc.b, 512); err == nil {
				t.Fatal("accepted")
			}
			if _, err := PackedPageLen(tc.b, 512); err == nil {
				t.Fatal("PackedPageLen accepted it")
			}
		})
	}
}

func FuzzUnpackPage(f *testing.F) {
	page := make([]byte, 512)
	copy(page[40:], "some cells")
	f.Add(AppendPackedPage(nil, page))
	f.Add([]byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, rest, err := UnpackPage(b, 512)
		n, lerr := PackedPageLen(b, 512)
		if (err == nil) != (lerr == nil) || err == nil && n != len(b)-len(rest) {
			t.Fatalf("UnpackPage: %v, %d bytes; PackedPageLen: %v, %d", err, len(b)-len(rest), lerr, n)
		}
		if err != nil {
			return
		}
		again, rest, err := UnpackPage(AppendPackedPage(nil, got), 512)
		if err != nil || len(rest) != 0 || !bytes.Equal(again, got) {
			t.Fatalf("repacking a decoded page: %v", err)
		}
	})
}

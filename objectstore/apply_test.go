package objectstore

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestRecordApplyAt(t *testing.T) {
	const ps = 512
	page := func(b byte) []byte { return bytes.Repeat([]byte{b}, ps) }
	cases := []struct {
		name     string
		before   []byte // the file's content
		size     int64  // what the caller says its size is
		rec      Record
		want     []byte
		wantSize int64
	}{
		{
			name: "consecutive and lone pages into an empty file", before: nil, size: 0,
			rec:  Record{PageSize: ps, DBPages: 5, Pages: map[uint32][]byte{1: page(1), 2: page(2), 3: page(3), 5: page(5)}},
			want: bytes.Join([][]byte{page(1), page(2), page(3), make([]byte, ps), page(5)}, nil), wantSize: 5 * ps,
		},
		{
			name: "shrinks the database", before: bytes.Join([][]byte{page(1), page(2), page(3)}, nil), size: 3 * ps,
			rec:  Record{PageSize: ps, DBPages: 2, Pages: map[uint32][]byte{2: page(9)}},
			want: bytes.Join([][]byte{page(1), page(9)}, nil), wantSize: 2 * ps,
		},
		{
			name: "size not known", before: bytes.Join([][]byte{page(1), page(2), page(3)}, nil), size: -1,
			rec:  Record{PageSize: ps, DBPages: 1, Pages: map[uint32][]byte{1: page(7)}},
			want: page(7), wantSize: ps,
		},
		{
			name: "same size, pages rewritten", before: bytes.Join([][]byte{page(1), page(2)}, nil), size: 2 * ps,
			rec:  Record{PageSize: ps, DBPages: 2, Pages: map[uint32][]byte{1: page(4), 2: page(6)}},
			want: bytes.Join([][]byte{page(4), page(6)}, nil), wantSize: 2 * ps,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			if err := os.WriteFile(path, tc.before, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			size, err := tc.rec.ApplyAt(f, tc.size)
			if err != nil || size != tc.wantSize {
				t.Fatalf("ApplyAt = %d, %v; want size %d", size, err, tc.wantSize)
			}
			got, _ := os.ReadFile(path)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("file is %d bytes, not the database wanted (%d bytes)", len(got), len(tc.want))
			}
		})
	}
}

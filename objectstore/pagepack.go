package objectstore

import (
	"encoding/binary"
	"errors"
)

// A commit's page images are mostly zeros: an object's database is small,
// and SQLite leaves a page's free space zeroed (a counter's commit is
// three 4 KiB pages holding under 200 bytes of data). The node log and
// the history keep each page packed: its zero runs as lengths, the rest
// as is, a few hundred bytes instead of a few pages, and far cheaper to
// make than DEFLATE.
//
// A packed page is a sequence of (uvarint zeros, uvarint literal length,
// literal bytes) that together cover exactly the page size.

// minZeroRun is the shortest zero run worth eliding (a pair's two varints
// cost at least two bytes).
const minZeroRun = 8

// AppendPackedPage appends page packed to b.
func AppendPackedPage(b, page []byte) []byte {
	i := 0
	for i < len(page) {
		zeros := zeroRun(page[i:])
		lit := literalRun(page[i+zeros:])
		b = binary.AppendUvarint(b, uint64(zeros))
		b = binary.AppendUvarint(b, uint64(lit))
		b = append(b, page[i+zeros:i+zeros+lit]...)
		i += zeros + lit
	}
	return b
}

// zeroRun is the length of the zero bytes p starts with.
func zeroRun(p []byte) int {
	n := 0
	for n+8 <= len(p) && binary.LittleEndian.Uint64(p[n:]) == 0 {
		n += 8
	}
	for n < len(p) && p[n] == 0 {
		n++
	}
	return n
}

// literalRun is the length of p's prefix up to its first zero run of
// minZeroRun bytes or more (or its end).
func literalRun(p []byte) int {
	i := 0
	for i < len(p) {
		if p[i] != 0 {
			i++
			continue
		}
		z := zeroRun(p[i:])
		if z >= minZeroRun || i+z == len(p) {
			return i
		}
		i += z
	}
	return i
}

// ErrBadPackedPage is a packed page that does not decode.
var ErrBadPackedPage = errors.New("malformed packed page")

// UnpackPage reads one packed page of size bytes from b and returns it
// and what follows it.
func UnpackPage(b []byte, size int) (page, rest []byte, err error) {
	page = make([]byte, size)
	rest, err = UnpackPageInto(page, b)
	if err != nil {
		return nil, nil, err
	}
	return page, rest, nil
}

// UnpackPageInto reads one packed page of len(page) bytes from b into
// page, whatever page held, and returns what follows it in b.
func UnpackPageInto(page, b []byte) (rest []byte, err error) {
	n, err := walkPacked(b, len(page), page)
	if err != nil {
		return nil, err
	}
	return b[n:], nil
}

// PackedPageLen is the length of the packed page of size bytes that b
// starts with, checked as UnpackPage checks it, without unpacking it:
// what passes packed pages on as they are (the history archiving the
// node log's records) needs only where each ends.
func PackedPageLen(b []byte, size int) (int, error) {
	return walkPacked(b, size, nil)
}

// walkPacked checks the packed page of size bytes that b starts with and
// returns its length; with page (size bytes) set it unpacks it there.
func walkPacked(b []byte, size int, page []byte) (int, error) {
	i, off := 0, 0
	for i < size {
		zeros, n := binary.Uvarint(b[off:])
		if n <= 0 || zeros > uint64(size-i) {
			return 0, ErrBadPackedPage
		}
		off += n
		lit, n := binary.Uvarint(b[off:])
		if n <= 0 || lit > uint64(size-i)-zeros || lit > uint64(len(b)-off-n) {
			return 0, ErrBadPackedPage
		}
		off += n
		if zeros == 0 && lit == 0 {
			return 0, ErrBadPackedPage // no progress
		}
		if page != nil {
			clear(page[i : i+int(zeros)])
			copy(page[i+int(zeros):], b[off:off+int(lit)])
		}
		i += int(zeros) + int(lit)
		off += int(lit)
	}
	return off, nil
}

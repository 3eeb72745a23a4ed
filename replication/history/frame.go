package history

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/dura-dev/dura/objectstore"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// A frame is length (4 bytes) and CRC32C (4 bytes) of its payload; the
// payload is tx, at, page size, database pages, page count (its top bits
// flag the images' form), the page numbers, then the page images in that
// order: each packed (objectstore.AppendPackedPage), as they are, or, in
// frames written before packing, one DEFLATE stream of them. Pages of
// small objects are mostly empty, and an object's history keeps every
// commit: packed, a counter's commit takes a few hundred bytes instead of
// three pages.
const frameHeadSize = 8 + 28

const (
	compressedFlag = 1 << 31 // one DEFLATE stream (read, no longer written)
	packedFlag     = 1 << 30 // each page packed
)

type frameHead struct {
	n          uint32
	crc        uint32
	tx         uint64
	at         int64
	pageSize   uint32
	dbPages    uint32
	count      uint32
	compressed bool
	packed     bool
}

// numbersEnd is where the page numbers end in the payload.
func (h frameHead) numbersEnd() int64 { return 28 + 4*int64(h.count) }

func parseHead(b []byte) frameHead {
	h := frameHead{
		n:        binary.LittleEndian.Uint32(b[0:4]),
		crc:      binary.LittleEndian.Uint32(b[4:8]),
		tx:       binary.LittleEndian.Uint64(b[8:16]),
		at:       int64(binary.LittleEndian.Uint64(b[16:24])),
		pageSize: binary.LittleEndian.Uint32(b[24:28]),
		dbPages:  binary.LittleEndian.Uint32(b[28:32]),
		count:    binary.LittleEndian.Uint32(b[32:36]),
	}
	h.compressed = h.count&compressedFlag != 0
	h.packed = h.count&packedFlag != 0
	h.count &^= compressedFlag | packedFlag
	return h
}

// appendFrame appends rec's frame to dst: pages packed, or as they are
// when packing gains nothing.
func appendFrame(dst []byte, at int64, rec objectstore.Record) []byte {
	pages := rec.SortedPages()
	start := len(dst)
	dst = appendFrameHead(dst, at, rec, pages, true)
	imagesAt, rawLen := len(dst), 0
	for _, p := range pages {
		dst = objectstore.AppendPackedPage(dst, rec.Pages[p])
		rawLen += len(rec.Pages[p])
	}
	if len(dst)-imagesAt >= rawLen {
		dst = appendFrameHead(dst[:start], at, rec, pages, false)
		for _, p := range pages {
			dst = append(dst, rec.Pages[p]...)
		}
	}
	return sealFrame(dst, start)
}

// appendPackedFrame appends the frame of t, whose pages are packed
// already (Timed.Packed).
func appendPackedFrame(dst []byte, t Timed) []byte {
	start := len(dst)
	dst = appendFrameHead(dst, t.At, t.Rec, t.Numbers, true)
	for _, img := range t.Packed {
		dst = append(dst, img...)
	}
	return sealFrame(dst, start)
}

// appendFrameHead appends a frame's length and CRC (left for sealFrame),
// its fixed fields and page numbers.
func appendFrameHead(dst []byte, at int64, rec objectstore.Record, pages []uint32, packed bool) []byte {
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	dst = binary.LittleEndian.AppendUint64(dst, rec.Tx)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(at))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(rec.PageSize))
	dst = binary.LittleEndian.AppendUint32(dst, rec.DBPages)
	count := uint32(len(pages))
	if packed {
		count |= packedFlag
	}
	dst = binary.LittleEndian.AppendUint32(dst, count)
	for _, p := range pages {
		dst = binary.LittleEndian.AppendUint32(dst, p)
	}
	return dst
}

// sealFrame writes the length and CRC of the frame starting at start.
func sealFrame(dst []byte, start int) []byte {
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(dst)-start-8))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(dst[start+8:], castagnoli))
	return dst
}

var errBadFrame = errors.New("history: malformed record")

// pageNumbers reads the page numbers of a payload (at least numbersEnd
// bytes of it).
func pageNumbers(h frameHead, payload []byte) ([]uint32, error) {
	if int64(len(payload)) < h.numbersEnd() {
		return nil, errBadFrame
	}
	out := make([]uint32, h.count)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(payload[28+4*i:])
	}
	return out, nil
}

// decodeRecord reads a frame's whole payload, checked against its CRC.
func decodeRecord(h frameHead, payload []byte) (objectstore.Record, error) {
	rec := objectstore.Record{Tx: h.tx, PageSize: int(h.pageSize), DBPages: h.dbPages}
	if crc32.Checksum(payload, castagnoli) != h.crc {
		return rec, fmt.Errorf("%w: checksum of transaction %d fails", errBadFrame, h.tx)
	}
	nums, err := pageNumbers(h, payload)
	if err != nil || rec.PageSize < 512 {
		return rec, errBadFrame
	}
	images := payload[h.numbersEnd():]
	if h.packed {
		rec.Pages = make(map[uint32][]byte, h.count)
		for _, p := range nums {
			page, rest, err := objectstore.UnpackPage(images, rec.PageSize)
			if err != nil {
				return rec, fmt.Errorf("%w: %v", errBadFrame, err)
			}
			rec.Pages[p], images = page, rest
		}
		if len(images) != 0 {
			return rec, errBadFrame
		}
		return rec, nil
	}
	want := int(h.count) * rec.PageSize
	if h.compressed {
		r := flate.NewReader(bytes.NewReader(images))
		images = make([]byte, want)
		_, err := io.ReadFull(r, images)
		r.Close()
		if err != nil {
			return rec, fmt.Errorf("%w: %v", errBadFrame, err)
		}
	}
	if len(images) != want {
		return rec, errBadFrame
	}
	rec.Pages = make(map[uint32][]byte, h.count)
	for i, p := range nums {
		rec.Pages[p] = images[i*rec.PageSize : (i+1)*rec.PageSize]
	}
	return rec, nil
}

var errStopScan = errors.New("stop")

// scanFrames walks a log's frames, calling fn with each one's head and
// offset, and returns the offset past the last whole one; with check it
// reads each payload and stops at the first whose checksum fails.
func scanFrames(f *os.File, check bool, fn func(frameHead, int64) error) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	var hb [frameHeadSize]byte
	off := int64(0)
	for off+frameHeadSize <= size {
		if _, err := f.ReadAt(hb[:], off); err != nil {
			return off, nil
		}
		h := parseHead(hb[:])
		if int64(h.n) < h.numbersEnd() || off+8+int64(h.n) > size {
			return off, nil
		}
		if check {
			payload := make([]byte, h.n)
			if _, err := f.ReadAt(payload, off+8); err != nil || crc32.Checksum(payload, castagnoli) != h.crc {
				return off, nil
			}
		}
		if err := fn(h, off); err != nil {
			return off, err
		}
		off += 8 + int64(h.n)
	}
	return off, nil
}

// wholeDatabase reports whether a record holds every page of its database.
func wholeDatabase(r objectstore.Record) bool {
	for pg := uint32(1); pg <= r.DBPages; pg++ {
		if _, ok := r.Pages[pg]; !ok {
			return false
		}
	}
	return r.DBPages > 0
}

package objectstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
)

// A Record is one committed transaction of one object as the pages it
// changed: applying the records of an object in order to an empty file
// (or to a copy as of an earlier record) gives the database as of the
// last one. Records are read back from the WAL frames SQLite appended,
// never guessed from file sizes.
type Record struct {
	// Tx is the object's transaction number after this commit (see
	// Store.TxNumber); 0 when the store does not number them.
	Tx uint64
	// PageSize is the database page size in bytes.
	PageSize int
	// DBPages is the database size in pages after the commit.
	DBPages uint32
	// Pages are the last image of each page the transaction wrote.
	Pages map[uint32][]byte
}

// SortedPages lists the record's page numbers in order.
func (r *Record) SortedPages() []uint32 {
	out := make([]uint32, 0, len(r.Pages))
	for p := range r.Pages {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Apply writes the record's pages into the database file f at
// (pgno-1)*PageSize and truncates it to DBPages pages. Applying a record
// twice, or records already reflected in f, is harmless.
func (r *Record) Apply(f *os.File) error {
	_, err := r.ApplyAt(f, -1)
	return err
}

// ApplyAt is Apply to a file of size bytes (-1: not known): pages with
// consecutive numbers go in one write, and the file is truncated only if
// its size changes. It returns the file's new size.
func (r *Record) ApplyAt(f *os.File, size int64) (int64, error) {
	pages := r.SortedPages()
	var buf []byte
	return ApplyPagesAt(f, size, r.PageSize, r.DBPages, pages, func(i int, dst []byte) error {
		copy(dst, r.Pages[pages[i]])
		return nil
	}, &buf)
}

// MaxApplyRun bounds the bytes ApplyPagesAt writes at once (and keeps in
// its buffer): a whole large database goes in pieces.
const MaxApplyRun = 256 << 10

// ApplyPagesAt writes the pages numbered numbers (ascending, pageSize
// bytes each) into f, a file of size bytes (-1: not known), fill putting
// page numbers[i] into dst: each run of consecutive pages, up to
// MaxApplyRun, is filled in buf (reused across calls) and written at
// once. The file is then dbPages pages long, truncated only if its size
// changes; the new size is returned.
func ApplyPagesAt(f *os.File, size int64, pageSize int, dbPages uint32, numbers []uint32, fill func(i int, dst []byte) error, buf *[]byte) (int64, error) {
	for i := 0; i < len(numbers); {
		j := i + 1
		for j < len(numbers) && numbers[j] == numbers[j-1]+1 && (j-i+1)*pageSize <= MaxApplyRun {
			j++
		}
		if cap(*buf) < (j-i)*pageSize {
			*buf = make([]byte, (j-i)*pageSize)
		}
		run := (*buf)[:(j-i)*pageSize]
		for k := i; k < j; k++ {
			if err := fill(k, run[(k-i)*pageSize:(k-i+1)*pageSize]); err != nil {
				return -1, fmt.Errorf("apply record page %d: %w", numbers[k], err)
			}
		}
		if _, err := f.WriteAt(run, int64(numbers[i]-1)*int64(pageSize)); err != nil {
			return -1, fmt.Errorf("apply record page %d: %w", numbers[i], err)
		}
		i = j
	}
	want := int64(dbPages) * int64(pageSize)
	if size != want {
		if err := f.Truncate(want); err != nil {
			return -1, fmt.Errorf("apply record: truncate: %w", err)
		}
	}
	return want, nil
}

// WAL file layout (sqlite.org/fileformat2.html#walformat).
const (
	walHeaderSize  = 32
	walFrameHeader = 24
	walMagicLE     = 0x377f0682 // checksums over little-endian words
	walMagicBE     = 0x377f0683 // checksums over big-endian words
)

// walTail follows one database's -wal file from the end of the last
// commit it read: it checks salts and the cumulative checksums frame by
// frame up to each commit frame, so frames a rolled-back transaction
// spilled (which the next commit overwrites without growing the file) and
// frames of an older WAL generation are never taken for committed ones.
// Not safe for concurrent use; read it while no transaction writes.
type walTail struct {
	path string

	pageSize int
	order    binary.ByteOrder // of the checksum words
	salt     [2]uint32        // of the WAL generation being followed
	off      int64            // just past the last commit frame read
	sum      [2]uint32        // cumulative checksum at off
	valid    bool             // a header was read (the fields above are set)
}

func newWALTail(dbPath string) *walTail { return &walTail{path: dbPath + "-wal"} }

// read returns the transactions committed to the WAL since the last call,
// in order. A new WAL generation (SQLite restarted the WAL after a
// checkpoint, with new salts) is followed from its first frame.
func (w *walTail) read() ([]Record, error) {
	// Opened for each read, not kept: an open object already holds three
	// files (database, WAL, shared memory), which --max-open-files counts.
	f, err := os.Open(w.path)
	if errors.Is(err, os.ErrNotExist) {
		w.valid = false
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read WAL: %w", err)
	}
	defer f.Close()
	var hdr [walHeaderSize]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		// Empty or cut short: a WAL being created holds no commit yet.
		return nil, nil
	}
	order, pageSize, salt, sum, ok := parseWALHeader(hdr[:])
	if !ok {
		return nil, nil
	}
	if !w.valid || salt != w.salt || pageSize != w.pageSize {
		w.pageSize, w.order, w.salt, w.off, w.sum, w.valid = pageSize, order, salt, walHeaderSize, sum, true
	}
	var out []Record
	pending := map[uint32][]byte{}
	sum = w.sum
	frame := make([]byte, walFrameHeader+pageSize)
	for off := w.off; ; off += int64(len(frame)) {
		if _, err := f.ReadAt(frame, off); err != nil {
			break // the end of the WAL (or a torn frame)
		}
		pgno := binary.BigEndian.Uint32(frame[0:4])
		dbPages := binary.BigEndian.Uint32(frame[4:8])
		if binary.BigEndian.Uint32(frame[8:12]) != salt[0] || binary.BigEndian.Uint32(frame[12:16]) != salt[1] {
			break // a frame of another generation
		}
		sum = walChecksum(order, sum, frame[0:8])
		sum = walChecksum(order, sum, frame[walFrameHeader:])
		if sum[0] != binary.BigEndian.Uint32(frame[16:20]) || sum[1] != binary.BigEndian.Uint32(frame[20:24]) {
			break // not a frame of this chain: stale or torn
		}
		pending[pgno] = append([]byte(nil), frame[walFrameHeader:]...)
		if dbPages == 0 {
			continue
		}
		out = append(out, Record{PageSize: pageSize, DBPages: dbPages, Pages: pending})
		pending = map[uint32][]byte{}
		w.off, w.sum = off+int64(len(frame)), sum
	}
	return out, nil
}

// parseWALHeader checks a WAL header and returns its checksum byte order,
// page size, salts and checksum.
func parseWALHeader(h []byte) (order binary.ByteOrder, pageSize int, salt, sum [2]uint32, ok bool) {
	switch binary.BigEndian.Uint32(h[0:4]) {
	case walMagicLE:
		order = binary.LittleEndian
	case walMagicBE:
		order = binary.BigEndian
	default:
		return nil, 0, salt, sum, false
	}
	pageSize = int(binary.BigEndian.Uint32(h[8:12]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return nil, 0, salt, sum, false
	}
	salt = [2]uint32{binary.BigEndian.Uint32(h[16:20]), binary.BigEndian.Uint32(h[20:24])}
	sum = walChecksum(order, [2]uint32{}, h[0:24])
	if sum[0] != binary.BigEndian.Uint32(h[24:28]) || sum[1] != binary.BigEndian.Uint32(h[28:32]) {
		return nil, 0, salt, sum, false
	}
	return order, pageSize, salt, sum, true
}

// walChecksum continues SQLite's WAL checksum over b (a multiple of 8
// bytes), its words read in order.
func walChecksum(order binary.ByteOrder, s [2]uint32, b []byte) [2]uint32 {
	s0, s1 := s[0], s[1]
	for i := 0; i+8 <= len(b); i += 8 {
		s0 += order.Uint32(b[i:]) + s1
		s1 += order.Uint32(b[i+4:]) + s0
	}
	return [2]uint32{s0, s1}
}

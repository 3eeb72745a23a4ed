package shipping

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Record is one entry of a partition's stream.
type Record struct {
	Partition int
	// Version is the partition's configuration version the primary
	// shipped it under; a replica that knows a newer primary refuses it.
	Version uint64
	// Run identifies the primary's stream: a primary that restarts
	// numbers its records anew under another Run, which its replicas
	// must not take for the old stream's.
	Run uint64
	// Seq numbers the partition's stream from 1, without gaps.
	Seq uint64
	// Entry is the node log entry, opaque here.
	Entry []byte
}

// Ack is a replica's answer for one partition of a batch.
type Ack struct {
	Partition int `json:"p"`
	// Seq is the highest record of the partition now durable there.
	Seq uint64 `json:"seq"`
	// Refused says why the partition's records were not taken (a gap, a
	// stale sender, not a replica); its stream to this replica is over.
	Refused string `json:"refused,omitempty"`
}

// Reasons a replica refuses a partition's records.
const (
	RefusedGap       = "gap"
	RefusedStale     = "stale"
	RefusedNotFollow = "not_following"
	RefusedFailed    = "failed"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errBadBatch = errors.New("shipping: malformed batch")

// recordHeader is a record's size in a batch before its entry.
const recordHeader = 4 + 8 + 8 + 8 + 4

const batchMagic = "DSB2"

// EncodeBatch lays records out: magic, count, then per record partition,
// version, run, seq, entry length and entry, and a CRC32C of all that.
func EncodeBatch(recs []Record) []byte {
	n := len(batchMagic) + 4 + 4
	for _, r := range recs {
		n += recordHeader + len(r.Entry)
	}
	b := make([]byte, 0, n)
	b = append(b, batchMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(recs)))
	for _, r := range recs {
		b = binary.LittleEndian.AppendUint32(b, uint32(r.Partition))
		b = binary.LittleEndian.AppendUint64(b, r.Version)
		b = binary.LittleEndian.AppendUint64(b, r.Run)
		b = binary.LittleEndian.AppendUint64(b, r.Seq)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Entry)))
		b = append(b, r.Entry...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// DecodeBatch reads a batch; entries alias b.
func DecodeBatch(b []byte) ([]Record, error) {
	if len(b) < len(batchMagic)+8 || string(b[:len(batchMagic)]) != batchMagic {
		return nil, errBadBatch
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: checksum", errBadBatch)
	}
	count := int(binary.LittleEndian.Uint32(body[len(batchMagic):]))
	body = body[len(batchMagic)+4:]
	recs := make([]Record, 0, min(count, len(body)/recordHeader))
	for range count {
		if len(body) < recordHeader {
			return nil, errBadBatch
		}
		r := Record{
			Partition: int(binary.LittleEndian.Uint32(body[0:4])),
			Version:   binary.LittleEndian.Uint64(body[4:12]),
			Run:       binary.LittleEndian.Uint64(body[12:20]),
			Seq:       binary.LittleEndian.Uint64(body[20:28]),
		}
		n := int(binary.LittleEndian.Uint32(body[28:32]))
		body = body[recordHeader:]
		if len(body) < n || n == 0 {
			return nil, errBadBatch
		}
		r.Entry, body = body[:n], body[n:]
		recs = append(recs, r)
	}
	if len(body) != 0 {
		return nil, errBadBatch
	}
	return recs, nil
}

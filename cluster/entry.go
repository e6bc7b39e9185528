package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/livekv/livekv/wal"
)

// A raft entry that carries transactions:
//
//	entry   := magic(0x4C 'L') version(1) nonce(uint64 BE) prev(uint64 BE)
//	           count(uvarint) record{count} crc(uint32 BE)
//	record  := one wal.AppendTxRecord frame (length, CRC-32C, type, payload)
//
// The records hold consecutive revisions. nonce identifies the leadership
// stint that executed them; prev is the nonce of the entry that holds the
// revision before the first (0 for none): the state the leader executed
// them on (see fsm.go). crc is a CRC-32C of everything before it, so
// damage to the header is found as well as to a record.
const (
	entryMagic   byte = 'L'
	entryVersion byte = 1
	entryHeader       = 2 + 8 + 8 // magic, version, nonce, prev
)

// errBadEntry wraps every failure to decode an entry.
var errBadEntry = errors.New("cluster: bad raft entry")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// entryBuilder packs transaction records into one entry.
type entryBuilder struct {
	recs  []byte
	count int
	first int64 // revision of the first record
	last  int64
}

// add appends the framed record of tx, which must hold the revision after
// the last one added.
func (b *entryBuilder) add(rec []byte, rev int64) {
	if b.count == 0 {
		b.first = rev
	}
	b.recs = append(b.recs, rec...)
	b.count++
	b.last = rev
}

// encode returns the entry, stamped with nonce and prev.
func (b *entryBuilder) encode(nonce, prev uint64) []byte {
	out := make([]byte, 0, entryHeader+binary.MaxVarintLen64+len(b.recs)+4)
	out = append(out, entryMagic, entryVersion)
	out = binary.BigEndian.AppendUint64(out, nonce)
	out = binary.BigEndian.AppendUint64(out, prev)
	out = binary.AppendUvarint(out, uint64(b.count))
	out = append(out, b.recs...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

// entry is a decoded entry.
type entry struct {
	nonce, prev uint64
	txs         []*wal.Tx
}

// decodeEntry decodes an entry: its nonces and its transactions, which
// are checked to hold consecutive revisions. The transactions' strings
// are copies, so b may be reused.
func decodeEntry(b []byte) (entry, error) {
	nonce, prev, txs, err := decodeEntryParts(b)
	return entry{nonce, prev, txs}, err
}

func decodeEntryParts(b []byte) (nonce, prev uint64, txs []*wal.Tx, err error) {
	if len(b) < entryHeader+1+4 {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes", errBadEntry, len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return 0, 0, nil, fmt.Errorf("%w: checksum mismatch", errBadEntry)
	}
	if body[0] != entryMagic || body[1] != entryVersion {
		return 0, 0, nil, fmt.Errorf("%w: magic %#x version %d", errBadEntry, body[0], body[1])
	}
	nonce = binary.BigEndian.Uint64(body[2:])
	prev = binary.BigEndian.Uint64(body[10:])
	count, n := binary.Uvarint(body[entryHeader:])
	if n <= 0 || count == 0 || count > uint64(len(body)) {
		return 0, 0, nil, fmt.Errorf("%w: bad record count", errBadEntry)
	}
	rest := body[entryHeader+n:]
	txs = make([]*wal.Tx, 0, count)
	for i := uint64(0); i < count; i++ {
		tx, n, err := wal.DecodeTxRecord(rest)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("%w: record %d: %w", errBadEntry, i, err)
		}
		if i > 0 && tx.Revision != txs[i-1].Revision+1 {
			return 0, 0, nil, fmt.Errorf("%w: revision %d follows %d", errBadEntry, tx.Revision, txs[i-1].Revision)
		}
		txs = append(txs, tx)
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes after the last record", errBadEntry, len(rest))
	}
	return nonce, prev, txs, nil
}

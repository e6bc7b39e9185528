package engine

import (
	"fmt"

	"github.com/livekv/livekv/pubsub"
	"github.com/livekv/livekv/wal"
)

var kindFromWAL = map[byte]pubsub.Type{wal.KindPut: pubsub.Put, wal.KindPatch: pubsub.Patch,
	wal.KindIncrement: pubsub.Increment, wal.KindDelete: pubsub.Delete, wal.KindExpire: pubsub.Expire}

// replay applies one transaction read from the log at Open: its writes
// again, as of its commit time, under its revision.
func (db *DB) replay(r *wal.Tx) error {
	if r.Revision <= db.rev {
		return fmt.Errorf("engine: log revision %d after %d", r.Revision, db.rev)
	}
	tx := &db.wtx
	db.begin(tx)
	tx.rev, tx.now = r.Revision, r.Time
	for _, w := range r.Writes {
		e, cur := tx.lookup(w.Key)
		tx.write(w.Key, e, cur, &version{value: w.Value, expires: w.Expires, kind: kindFromWAL[w.Kind]})
	}
	_, err := tx.commit()
	return err
}

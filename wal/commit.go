package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("wal: log closed")

// ErrTooLarge is returned by Append for a transaction whose record would be
// over Options.MaxRecord, and by Log.Snapshot for a snapshot item whose
// record would be: Append writes nothing of it, Snapshot puts no snapshot
// in place, and the log stays usable. WriteSnapshot returns it for an item
// whose record no reader takes, over 4 GiB - 1 bytes.
var ErrTooLarge = errors.New("wal: record too large")

// ErrInvalid is returned for input that the log would write but that its
// reader would refuse: a transaction that Append is given at a revision
// other than the next, or with a write of a kind other than KindPut to
// KindExpire or with an empty key; a snapshot item that breaks Item's
// rules, or a nil one, or a nil sequence of items. Nothing is written and
// the log stays usable.
var ErrInvalid = errors.New("wal: invalid input")

// Append queues tx to be written. tx.Revision must be the next revision:
// one more than the last appended or, before the first Append, than the
// last that Open found (the snapshot's, if no record follows it; 0 in a
// new log). Replay refuses a gap once a snapshot holds the records before
// it, and the engine, the log's writer, numbers its commits so. Each
// write's Kind must be one of KindPut to KindExpire (Created says the
// rest) and its Key not empty. Append refuses a tx that breaks these
// rules with an error that wraps ErrInvalid, writes nothing of it and
// stays usable. It does not wait or write: WaitDurable does. An earlier
// write or sync failure is returned here (sticky) until the log is
// reopened.
func (l *Log) Append(tx *Tx) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.err != nil {
		return l.mu.err
	}
	if l.mu.closing {
		return ErrClosed
	}
	if tx.Revision != l.mu.last+1 {
		return fmt.Errorf("%w: revision %d appended after %d", ErrInvalid, tx.Revision, l.mu.last)
	}
	for i := range tx.Writes {
		// What the decoder refuses (decodeTx) would make the whole log
		// fail to open.
		switch w := &tx.Writes[i]; {
		case w.Kind < KindPut || w.Kind > KindExpire:
			return fmt.Errorf("%w: revision %d writes %q with kind %d", ErrInvalid, tx.Revision, w.Key, w.Kind)
		case w.Key == "":
			return fmt.Errorf("%w: revision %d writes an empty key", ErrInvalid, tx.Revision)
		}
	}
	start := len(l.mu.pending)
	l.mu.pending = appendRecord(l.mu.pending, typeTx, nil)
	l.mu.pending = appendTx(l.mu.pending, tx)
	if n := len(l.mu.pending) - start - recordHeaderSize; n > l.opts.MaxRecord {
		// Recovery would take a record over the limit for damage, so
		// none is written; the log is as it was.
		l.mu.pending = l.mu.pending[:start]
		return fmt.Errorf("%w: a record of %d bytes, limit %d", ErrTooLarge, n, l.opts.MaxRecord)
	}
	l.mu.pending = reframe(l.mu.pending, start)
	l.mu.waiting++
	l.mu.last = tx.Revision
	l.mu.stats.Records++
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return nil
}

// reframe fixes the header of the record at b[start:] after its payload
// was appended in place behind an empty frame.
func reframe(b []byte, start int) []byte {
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-recordHeaderSize))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+8:], castagnoli))
	return b
}

// WaitDurable waits until every record up to rev is durable under the
// sync policy, or returns the error that stopped it. If no group is being
// written, the caller writes (and syncs) everything waiting itself, as the
// group's leader; otherwise it waits for the leader, and leads the next
// group if its record is still waiting then. So a lone writer syncs its
// own records with no hand-off to another goroutine, and many writers
// share each fsync.
func (l *Log) WaitDurable(rev int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.mu.durable < rev {
		switch {
		case l.mu.err != nil:
			return l.mu.err
		case l.mu.stopped:
			return ErrClosed
		case !l.mu.busy && len(l.mu.pending) > 0:
			l.lead()
		default:
			l.mu.cond.Wait()
		}
	}
	return nil
}

// lead writes everything waiting as one group and, under SyncAlways,
// syncs once for all of it. l.mu is held, and held again on return; the
// file work happens without it, while l.mu.busy keeps every other leader out.
func (l *Log) lead() {
	l.mu.busy = true
	if target := l.mu.waiting + l.lastGroup*3/4; l.mu.waiting < target && l.opts.Sync == SyncAlways && !l.mu.closing {
		// The last sync released the writers of its group, who are
		// likely to write again at once. Give them a moment to append,
		// so that this sync serves them with those who wrote during the
		// last one. Otherwise groups settle into two halves, each
		// synced alone.
		l.mu.Unlock()
		l.gather(target, l.lastSync/2)
		l.mu.Lock()
	}
	group, last := l.mu.pending, l.mu.last
	l.lastGroup = l.mu.waiting
	l.mu.pending, l.mu.spare, l.mu.waiting = l.mu.spare[:0], nil, 0
	failed := l.mu.err != nil
	l.mu.Unlock()

	var err error
	dirty := false
	if !failed {
		err = l.write(group)
		if err == nil && l.opts.Sync == SyncAlways {
			began := time.Now()
			err = l.sync()
			l.lastSync = time.Since(began)
		} else if err == nil {
			dirty = true
		}
	}

	l.mu.Lock()
	l.mu.spare = group[:0]
	l.mu.stats.Groups++
	l.mu.dirty = l.mu.dirty || dirty
	if err != nil && l.mu.err == nil {
		l.mu.err = fmt.Errorf("wal: %w (the log refuses writes until reopened)", err)
	}
	if l.mu.err == nil {
		l.mu.durable = last
	}
	l.mu.busy = false
	l.mu.cond.Broadcast()
}

// syncLoop fsyncs what was written, every interval, under SyncInterval.
func (l *Log) syncLoop(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		for l.mu.busy {
			l.mu.cond.Wait()
		}
		if !l.mu.dirty || l.mu.syncFailed || l.seg == nil || l.mu.stopped {
			l.mu.Unlock()
			continue
		}
		l.mu.busy, l.mu.dirty = true, false
		l.mu.Unlock()
		err := l.sync()
		l.mu.Lock()
		if err != nil && l.mu.err == nil {
			l.mu.err = fmt.Errorf("wal: %w (the log refuses writes until reopened)", err)
		}
		l.mu.busy = false
		l.mu.cond.Broadcast()
		l.mu.Unlock()
	}
}

// gather waits until at least n records are waiting, for at most d.
func (l *Log) gather(n int, d time.Duration) {
	l.gatherTimer.Reset(min(d, maxGather))
	defer l.gatherTimer.Stop()
	for {
		l.mu.Lock()
		enough := l.mu.waiting >= n || l.mu.closing
		l.mu.Unlock()
		if enough {
			return
		}
		select {
		case <-l.kick:
		case <-l.gatherTimer.C:
			return
		}
	}
}

// maxGather bounds how long a leader waits for its group to fill.
const maxGather = time.Millisecond

func (l *Log) sync() error {
	began := time.Now()
	if err := l.seg.Sync(); err != nil {
		// What was written since the last sync may never reach the
		// disk, whatever a later fsync says (Linux counts the pages
		// written back). Cut it off, best effort, so that an Open after
		// a restart does not replay it and go on after it, to find a
		// hole there after a machine crash. (A file system that did
		// write it may still keep it: it is whole records.)
		cut := int64(0)
		if l.seg.Truncate(l.segSynced) == nil {
			cut, l.segSize = l.segSize-l.segSynced, l.segSynced
		}
		l.mu.Lock()
		l.mu.syncFailed = true
		if l.segListed { // else a new segment's header, counted nowhere yet
			l.mu.segments[len(l.mu.segments)-1].size -= cut
			l.mu.stats.Bytes -= cut
		}
		l.mu.Unlock()
		return err
	}
	l.segSynced = l.segSize
	took := time.Since(began)
	l.mu.Lock()
	l.mu.stats.Syncs++
	l.mu.stats.SyncLatency.Add(took)
	l.mu.Unlock()
	return nil
}

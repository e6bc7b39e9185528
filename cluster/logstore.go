package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// Files and directories of the log stores in a node's directory.
const (
	raftDBFile  = "raft.db"     // LogStoreBolt: the raft log and stable store (BoltDB)
	walDir      = "wal"         // LogStoreWAL: segment files and walMetaFile
	walMetaFile = "wal-meta.db" // raft-wal's BoltDB file in walDir
)

// logStoreBytes returns the size of the files of the log store kind in
// dir: the BoltDB file, or raft-wal's segments and its BoltDB file. A
// file it cannot read counts nothing.
func logStoreBytes(dir string, kind LogStore) int64 {
	if kind != LogStoreWAL {
		fi, err := os.Stat(filepath.Join(dir, raftDBFile))
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	entries, err := os.ReadDir(filepath.Join(dir, walDir))
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

// logStore is what raft needs of a log store: the log and the stable
// state, which both stores keep together.
type logStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// openLogStore opens the log store o.LogStore in dir, refusing a
// directory that holds the other store's files: opening it with the
// wrong store would find no raft state, and the node would start over
// with an empty log and no memory of its votes.
func openLogStore(dir string, o *Options) (logStore, error) {
	boltPath, walPath := filepath.Join(dir, raftDBFile), filepath.Join(dir, walDir)
	other, mine := walPath, boltPath
	if o.LogStore == LogStoreWAL {
		other, mine = boltPath, walPath
	}
	if _, err := os.Stat(other); err == nil {
		return nil, fmt.Errorf("%w: %s holds raft state in %s, not in the %q log store's %s",
			ErrInvalidOptions, dir, filepath.Base(other), o.LogStore, filepath.Base(mine))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	// A BoltDB file that a running node holds would make the open wait
	// for it forever.
	lockPath := boltPath
	if o.LogStore == LogStoreWAL {
		lockPath = filepath.Join(walPath, walMetaFile)
	}
	if _, err := os.Stat(lockPath); err == nil {
		if err := notLocked(lockPath); err != nil {
			return nil, err
		}
	}
	switch o.LogStore {
	case LogStoreWAL:
		return openWAL(walPath, o)
	default:
		s, err := raftboltdb.New(raftboltdb.Options{Path: boltPath})
		if err != nil {
			return nil, fmt.Errorf("cluster: open raft log: %w", err)
		}
		return s, nil
	}
}

// walStore is raft-wal's WAL with the meta store it keeps the stable
// state in. raft-wal v0.4.0's Close leaves its meta store open (fixed
// upstream after v0.4.0), and the BoltDB file lock it holds would make
// the next Open in this process wait forever: the node passes its own
// meta store and closes it after the WAL.
type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

// openWAL opens, or creates, the raft-wal log in dir.
func openWAL(dir string, o *Options) (logStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir,
		wal.WithMetaStore(meta),
		wal.WithSegmentFiler(&segmentFiler{segment.NewFiler(dir, fs.New())}),
		wal.WithLogger(hclog.New(&hclog.LoggerOptions{Name: "wal", Level: hclog.Info, Output: o.logWriter()})),
		wal.WithSegmentSize(o.walSegmentSize))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("cluster: open raft log: %w", err), meta.Close())
	}
	return &walStore{WAL: w, meta: meta}, nil
}

// Close closes the WAL, then its meta store.
func (s *walStore) Close() error {
	return errors.Join(s.WAL.Close(), s.meta.Close())
}

// segmentFiler is raft-wal's segment filer, mending how v0.4.0 reopens a
// segment that a tail truncation sealed.
//
// When raft deletes a suffix of the log that starts inside the tail
// segment (a follower dropping uncommitted entries that conflict with a
// new leader's), raft-wal v0.4.0 marks that segment sealed without
// writing the index block a sealed segment is read through, and starts a
// new tail. The running WAL still reads the old segment through its
// writer's in-memory index, but once reopened every entry in it fails
// with "sealed segment has no index block", and raft cannot start or
// replicate. (Fixed upstream after v0.4.0, in raft-wal #33, by writing
// the index when the truncation seals the segment.) Such a segment is
// recognisable, sealed with no index offset, and its entries are intact:
// this filer opens it the way raft-wal recovers a tail after a crash, by
// scanning its frames and checking the last batch's CRC, which rebuilds
// the index in memory. The WAL's metadata still bounds the segment at its
// MaxIndex, so the truncated entries beyond it are never read.
type segmentFiler struct {
	*segment.Filer
}

// Open opens a sealed segment for reading.
func (f *segmentFiler) Open(info types.SegmentInfo) (types.SegmentReader, error) {
	if info.SealTime.IsZero() || info.IndexStart != 0 {
		return f.Filer.Open(info)
	}
	r, err := f.Filer.RecoverTail(info)
	if err != nil {
		return nil, err
	}
	// Every entry the metadata says the segment holds must be there.
	for _, i := range []uint64{info.MinIndex, info.MaxIndex} {
		if i == 0 {
			continue
		}
		b, err := r.GetLog(i)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("%w: segment %d (base index %d) lacks entry %d after a tail truncation: %v",
				types.ErrCorrupt, info.ID, info.BaseIndex, i, err)
		}
		b.Close()
	}
	return r, nil
}

package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	badger "github.com/dgraph-io/badger/v4"
	"github.com/livekv/livekv/engine"
	"github.com/tidwall/buntdb"
	bolt "go.etcd.io/bbolt"
)

// KV is what the workloads ask of an engine.
type KV interface {
	Set(k, v string) error
	Get(k string) error
	Incr(k string) error
	Range(start string, n int) (int, error) // up to n keys from start, in order
	CAS(k, v string) error                  // read k, then replace it only if unchanged since
	Close() error
}

// peer is an engine and how it is opened: in memory (dir "") where it can
// be, else in dir; durable means a write returns once it is on disk.
type peer struct {
	name     string
	settings string // the configuration, for the report
	durable  string // the durable configuration
	open     func(dir string, durable bool) (KV, error)
}

var peers = []peer{
	{"livekv", `in memory: Open(""); on disk: Open(dir)`, "SyncAlways (default)", openLivekv},
	{"buntdb", `":memory:"; on disk: a file`, "SyncPolicy: Always", openBunt},
	{"bbolt", "a file with NoSync and NoFreelistSync (it has no memory mode); one write per Update",
		"fsync per Update (not Batch), NoFreelistSync (its freelist rebuilt at Open)", openBolt},
	{"pebble", "vfs.NewMem(); writes with NoSync", "writes with pebble.Sync", openPebble},
	{"badger", "InMemory: true", "SyncWrites: true", openBadger},
}

var errConflict = errors.New("conflict")

// incremented is the value an increment stores: old plus one, or 1 if the
// key was not found.
func incremented(old string, found bool) (string, error) {
	n := 0
	if found {
		var err error
		if n, err = strconv.Atoi(old); err != nil {
			return "", err
		}
	}
	return strconv.Itoa(n + 1), nil
}

func openLivekv(dir string, durable bool) (KV, error) {
	o := &engine.Options{SweepInterval: -1}
	if !durable {
		o.Sync = engine.SyncNever
	}
	db, err := engine.Open(dir, o)
	return livekvKV{db}, err
}

type livekvKV struct{ db *engine.DB }

func (s livekvKV) Set(k, v string) error { _, err := s.db.Set(k, v, nil); return err }
func (s livekvKV) Get(k string) error    { _, err := s.db.Get(k); return err }
func (s livekvKV) Incr(k string) error   { _, _, err := s.db.Increment(k, 1); return err }
func (s livekvKV) Range(start string, n int) (int, error) {
	items, err := s.db.Range(start, "", &engine.RangeOptions{Limit: n})
	if err != nil {
		return 0, err
	}
	c := 0
	for _, err := range items {
		if err != nil {
			return c, err
		}
		c++
	}
	return c, nil
}
func (s livekvKV) CAS(k, v string) error {
	it, err := s.db.Get(k)
	if err == nil {
		_, err = s.db.CompareAndSwap(k, it.Revision, v, nil)
	}
	return err
}
func (s livekvKV) Close() error { return s.db.Close() }

func openBunt(dir string, durable bool) (KV, error) {
	path := ":memory:"
	if dir != "" {
		path = filepath.Join(dir, "bunt.db")
	}
	db, err := buntdb.Open(path)
	if err != nil {
		return nil, err
	}
	var policy buntdb.SyncPolicy = buntdb.EverySecond
	if durable {
		policy = buntdb.Always
	}
	if err := db.SetConfig(buntdb.Config{SyncPolicy: policy, AutoShrinkDisabled: true}); err != nil {
		db.Close()
		return nil, err
	}
	return buntKV{db}, nil
}

type buntKV struct{ db *buntdb.DB }

func (s buntKV) Set(k, v string) error {
	return s.db.Update(func(tx *buntdb.Tx) error { _, _, err := tx.Set(k, v, nil); return err })
}
func (s buntKV) Get(k string) error {
	return s.db.View(func(tx *buntdb.Tx) error { _, err := tx.Get(k); return err })
}
func (s buntKV) Incr(k string) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		v, err := tx.Get(k)
		if err != nil && !errors.Is(err, buntdb.ErrNotFound) {
			return err
		}
		if v, err = incremented(v, err == nil); err != nil {
			return err
		}
		_, _, err = tx.Set(k, v, nil)
		return err
	})
}
func (s buntKV) Range(start string, n int) (int, error) {
	c := 0
	err := s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendGreaterOrEqual("", start, func(k, v string) bool { c++; return c < n })
	})
	return c, err
}
func (s buntKV) CAS(k, v string) error {
	old := ""
	err := s.db.View(func(tx *buntdb.Tx) error { var err error; old, err = tx.Get(k); return err })
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *buntdb.Tx) error {
		cur, err := tx.Get(k)
		if err != nil || cur != old {
			return errConflict
		}
		_, _, err = tx.Set(k, v, nil)
		return err
	})
}
func (s buntKV) Close() error { return s.db.Close() }

var boltBucket = []byte("kv")

func openBolt(dir string, durable bool) (KV, error) {
	if dir == "" {
		return nil, fmt.Errorf("bbolt needs a folder")
	}
	// NoFreelistSync, as etcd runs it, in every workload: a commit writes
	// no freelist pages, and Open rebuilds the freelist by reading every
	// page. It costs nothing in durability; it makes commits cheaper
	// (insert, increment, durable) and Open dearer (recovery), and the
	// settings above say so.
	db, err := bolt.Open(filepath.Join(dir, "bolt.db"), 0o600, &bolt.Options{NoSync: !durable, NoFreelistSync: true})
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(boltBucket); return err }); err != nil {
		db.Close()
		return nil, err
	}
	return boltKV{db}, nil
}

type boltKV struct{ db *bolt.DB }

func (s boltKV) Set(k, v string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(boltBucket).Put([]byte(k), []byte(v)) })
}
func (s boltKV) Get(k string) error {
	return s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(boltBucket).Get([]byte(k)) == nil {
			return errors.New("not found")
		}
		return nil
	})
}
func (s boltKV) Incr(k string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(boltBucket)
		old := b.Get([]byte(k))
		v, err := incremented(string(old), old != nil)
		if err != nil {
			return err
		}
		return b.Put([]byte(k), []byte(v))
	})
}
func (s boltKV) Range(start string, n int) (int, error) {
	c := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(boltBucket).Cursor()
		for k, _ := cur.Seek([]byte(start)); k != nil && c < n; k, _ = cur.Next() {
			c++
		}
		return nil
	})
	return c, err
}
func (s boltKV) CAS(k, v string) error {
	var old []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		old = append([]byte(nil), tx.Bucket(boltBucket).Get([]byte(k))...)
		return nil
	})
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(boltBucket)
		if string(b.Get([]byte(k))) != string(old) {
			return errConflict
		}
		return b.Put([]byte(k), []byte(v))
	})
}
func (s boltKV) Close() error { return s.db.Close() }

func openPebble(dir string, durable bool) (KV, error) {
	o := &pebble.Options{Logger: quietLogger{}}
	if dir == "" {
		o.FS = vfs.NewMem()
	}
	db, err := pebble.Open(dir, o)
	if err != nil {
		return nil, err
	}
	wo := pebble.NoSync
	if durable {
		wo = pebble.Sync
	}
	return &pebbleKV{db: db, wo: wo}, nil
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// pebbleKV serialises read-modify-writes with a lock of its own, since
// pebble has no transactions; increments and compare-and-swap need one.
type pebbleKV struct {
	db *pebble.DB
	wo *pebble.WriteOptions
	mu sync.Mutex
}

func (s *pebbleKV) Set(k, v string) error { return s.db.Set([]byte(k), []byte(v), s.wo) }
func (s *pebbleKV) Get(k string) error {
	_, closer, err := s.db.Get([]byte(k))
	if err != nil {
		return err
	}
	return closer.Close()
}
func (s *pebbleKV) get(k string) (string, error) {
	v, closer, err := s.db.Get([]byte(k))
	if err != nil {
		return "", err
	}
	defer closer.Close()
	return string(v), nil
}
func (s *pebbleKV) Incr(k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.get(k)
	if err != nil && !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	if v, err = incremented(v, err == nil); err != nil {
		return err
	}
	return s.db.Set([]byte(k), []byte(v), s.wo)
}
func (s *pebbleKV) Range(start string, n int) (int, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte(start)})
	if err != nil {
		return 0, err
	}
	c := 0
	for it.First(); it.Valid() && c < n; it.Next() {
		_ = it.Value()
		c++
	}
	return c, it.Close()
}
func (s *pebbleKV) CAS(k, v string) error {
	old, err := s.get(k)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.get(k)
	if err != nil || cur != old {
		return errConflict
	}
	return s.db.Set([]byte(k), []byte(v), s.wo)
}
func (s *pebbleKV) Close() error { return s.db.Close() }

func openBadger(dir string, durable bool) (KV, error) {
	o := badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(durable)
	if dir == "" {
		o = o.WithInMemory(true)
	}
	db, err := badger.Open(o)
	return badgerKV{db}, err
}

type badgerKV struct{ db *badger.DB }

func (s badgerKV) Set(k, v string) error {
	return s.db.Update(func(tx *badger.Txn) error { return tx.Set([]byte(k), []byte(v)) })
}
func (s badgerKV) Get(k string) error {
	return s.db.View(func(tx *badger.Txn) error {
		it, err := tx.Get([]byte(k))
		if err != nil {
			return err
		}
		return it.Value(func([]byte) error { return nil })
	})
}
func (s badgerKV) Incr(k string) error {
	for {
		err := s.db.Update(func(tx *badger.Txn) error {
			var old []byte
			it, err := tx.Get([]byte(k))
			if err == nil {
				old, err = it.ValueCopy(nil)
			}
			if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
			v, err := incremented(string(old), err == nil)
			if err != nil {
				return err
			}
			return tx.Set([]byte(k), []byte(v))
		})
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
}
func (s badgerKV) Range(start string, n int) (int, error) {
	c := 0
	err := s.db.View(func(tx *badger.Txn) error {
		it := tx.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Seek([]byte(start)); it.Valid() && c < n; it.Next() {
			if err := it.Item().Value(func([]byte) error { return nil }); err != nil {
				return err
			}
			c++
		}
		return nil
	})
	return c, err
}
func (s badgerKV) CAS(k, v string) error {
	return s.db.Update(func(tx *badger.Txn) error {
		if _, err := tx.Get([]byte(k)); err != nil {
			return err
		}
		return tx.Set([]byte(k), []byte(v)) // badger's transactions detect the conflict at commit
	})
}
func (s badgerKV) Close() error { return s.db.Close() }

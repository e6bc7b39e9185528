package engine_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/stretchr/testify/require"
)

func TestDB_Increment_Parallel(t *testing.T) {
	db := open(t, nil)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, _, err := db.Increment("n", 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	it, err := db.Get("n")
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(workers*each), it.Value)
	require.Equal(t, int64(workers*each), it.Version)
}

func TestDB_CompareAndSwap_LosesNoUpdate(t *testing.T) {
	db := open(t, nil)
	const workers, each = 8, 200
	var wg sync.WaitGroup
	var conflicts sync.Map
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; {
				it, err := db.Get("n")
				var n, rev int64
				if err == nil {
					n, _ = strconv.ParseInt(it.Value, 10, 64)
					rev = it.Revision
				} else if !errors.Is(err, engine.ErrNotFound) {
					t.Error(err)
					return
				}
				_, err = db.CompareAndSwap("n", rev, strconv.FormatInt(n+1, 10), nil)
				switch {
				case err == nil:
					i++
				case errors.Is(err, engine.ErrConflict):
					conflicts.Store(w, true)
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	it, err := db.Get("n")
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(workers*each), it.Value)
}

// TestDB_Snapshot_Consistent moves amounts between accounts in transactions
// while scans and views check that the total never changes.
func TestDB_Snapshot_Consistent(t *testing.T) {
	db := open(t, nil)
	const accounts, total = 50, 50 * 100
	require.NoError(t, errOf(db.Update(func(tx *engine.Tx) error {
		for i := 0; i < accounts; i++ {
			if _, err := tx.Set(fmt.Sprintf("acct:%03d", i), "100", nil); err != nil {
				return err
			}
		}
		return nil
	})))
	stop := make(chan struct{})
	var writers, readers sync.WaitGroup
	for w := 0; w < 4; w++ {
		writers.Add(1)
		go func(seed uint64) {
			defer writers.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			for i := 0; i < 2000; i++ {
				a, b := r.IntN(accounts), r.IntN(accounts)
				amount := int64(r.IntN(10))
				_, err := db.Update(func(tx *engine.Tx) error {
					if _, err := tx.Increment(fmt.Sprintf("acct:%03d", a), -amount); err != nil {
						return err
					}
					// Churn keys too, so that the tree changes under the scans.
					k := fmt.Sprintf("tmp:%d", r.IntN(20))
					if r.IntN(2) == 0 {
						_, _ = tx.Set(k, "x", nil)
					} else {
						_ = tx.Delete(k)
					}
					_, err := tx.Increment(fmt.Sprintf("acct:%03d", b), amount)
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}(uint64(w))
	}
	sum := func(seq func(func(engine.Item, error) bool)) (int64, int) {
		var s int64
		n := 0
		for it, err := range seq {
			if err != nil {
				t.Error(err)
				return 0, 0
			}
			v, _ := strconv.ParseInt(it.Value, 10, 64)
			s += v
			n++
		}
		return s, n
	}
	for rd := 0; rd < 2; rd++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s, n := sum(enginetest.Items(db.Prefix("acct:", nil))); s != total || n != accounts {
					t.Errorf("scan saw total %d over %d accounts, want %d over %d", s, n, total, accounts)
					return
				}
				err := db.View(func(tx *engine.Tx) error {
					var s int64
					for i := 0; i < accounts; i++ {
						it, err := tx.Get(fmt.Sprintf("acct:%03d", i))
						if err != nil {
							return err
						}
						v, _ := strconv.ParseInt(it.Value, 10, 64)
						s += v
					}
					if s != total {
						return fmt.Errorf("view saw total %d, want %d", s, total)
					}
					if s2, _ := sum(enginetest.Items(tx.Prefix("acct:", nil))); s2 != total {
						return fmt.Errorf("view scan saw total %d, want %d", s2, total)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	s, n := sum(enginetest.Items(db.Prefix("acct:", nil)))
	require.Equal(t, int64(total), s)
	require.Equal(t, accounts, n)
	require.Equal(t, int64(0), db.Stats().Snapshots)
}

func TestDB_Close_WhileBusy(t *testing.T) {
	db, err := engine.Open("", &engine.Options{SweepInterval: 1})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				_, err := db.Set(strconv.Itoa(i%100), "v", &engine.SetOptions{TTL: 1})
				if errors.Is(err, engine.ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = db.Get(strconv.Itoa(i % 100))
			}
		}()
	}
	for db.Stats().Expired == 0 {
		runtimeGosched()
	}
	require.NoError(t, db.Close())
	wg.Wait()
}

// TestDB_Reads_NeverTorn checks that a reader never sees parts of two
// versions of a key: every value written names its own version and has a
// length that changes with it, and gets, scans and views running beside
// the writers check each item they read against that.
func TestDB_Reads_NeverTorn(t *testing.T) {
	db := open(t, nil)
	const keys, writes = 8, 3000
	valueOf := func(ver int64) string {
		return strings.Repeat("x", int(ver%61)) + ":" + strconv.FormatInt(ver, 10)
	}
	check := func(it engine.Item) error {
		if it.Value != valueOf(it.Version) {
			return fmt.Errorf("%s at version %d holds %q", it.Key, it.Version, it.Value)
		}
		return nil
	}
	stop := make(chan struct{})
	var writers, readers sync.WaitGroup
	for w := 0; w < 2; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; i < writes; i++ {
				k := fmt.Sprintf("k%d", (i+w)%keys)
				// Set the value the next version must hold; a delete now
				// and then starts the key again at version 1.
				_, err := db.Update(func(tx *engine.Tx) error {
					it, err := tx.Get(k)
					var ver int64 = 1
					if err == nil {
						ver = it.Version + 1
					}
					if ver > 100 {
						return tx.Delete(k)
					}
					_, err = tx.Set(k, valueOf(ver), nil)
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for r := 0; r < 3; r++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < keys; i++ {
					if it, err := db.Get(fmt.Sprintf("k%d", i)); err == nil {
						if err := check(it); err != nil {
							t.Error("get:", err)
							return
						}
					}
				}
				for it, err := range enginetest.Items(db.Range("", "", nil)) {
					if err == nil {
						err = check(it)
					}
					if err != nil {
						t.Error("range:", err)
						return
					}
				}
				err := db.View(func(tx *engine.Tx) error {
					for it, err := range enginetest.Items(tx.Prefix("k", &engine.RangeOptions{Reverse: true})) {
						if err == nil {
							err = check(it)
						}
						if err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Error("view:", err)
					return
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	readers.Wait()
}

// TestDB_Get_SeesWholeTransactions checks that a Get never shows a write
// of a transaction that is not yet visible as a whole: a reader that
// gets the first key a transaction wrote, then the last, never finds
// the last older than the first, nor Revision below what it got.
func TestDB_Get_SeesWholeTransactions(t *testing.T) {
	db := open(t, nil)
	keys := make([]string, 2000) // a commit's publish long enough to be caught in
	for i := range keys {
		keys[i] = fmt.Sprintf("k%04d", i)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, err := db.Update(func(tx *engine.Tx) error {
				for _, k := range keys {
					if _, err := tx.Set(k, "v", nil); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for n := 0; n < 20000; {
		first, err := db.Get(keys[0])
		if errors.Is(err, engine.ErrNotFound) {
			runtime.Gosched() // the first transaction is not visible yet
			continue
		}
		n++
		require.NoError(t, err)
		rev := db.Revision()
		last, err := db.Get(keys[len(keys)-1])
		require.NoError(t, err, "%s at revision %d, Revision() %d", keys[0], first.Revision, rev)
		require.GreaterOrEqual(t, rev, first.Revision, "a Get showed a revision not yet visible")
		require.GreaterOrEqual(t, last.Revision, first.Revision, "a Get showed part of a transaction")
	}
}

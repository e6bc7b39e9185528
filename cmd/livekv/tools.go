package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/vfs"
	"github.com/livekv/livekv/wal"
)

// storedKey returns the API key kept in file, making one if there is none:
// written to a file of its own, synced, then given its name, its folder
// synced, so that a failure or a crash leaves the whole key or none (a
// key cut short would be taken as the key by the next serve).
func storedKey(file string) (key string, created bool, err error) {
	b, err := os.ReadFile(file)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", false, err
	}
	key = hex.EncodeToString(raw)
	if err := writeWhole(file, func(w io.Writer) error {
		_, err := io.WriteString(w, key+"\n")
		return err
	}); err != nil {
		return "", false, err
	}
	return key, true, nil
}

// writeWhole makes the file name whole or not at all: write fills a file
// of its own beside it (mode 0600), which is synced, then given the name,
// its folder synced, so that a failure (write's error included) or a crash
// leaves name as it was or whole, never cut short.
func writeWhole(name string, write func(w io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(name), filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // gone once renamed
	err = write(f)
	if err == nil {
		err = syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err == nil {
		// The name is durable only once its folder is.
		err = syncDir(filepath.Dir(name))
	}
	return err
}

// syncFile syncs a file writeWhole made; tests make it fail.
var syncFile = (*os.File).Sync

// folderFlags parses a subcommand's flags, which define adds, and its one
// argument, a data folder, which must hold livekv data when holdsData
// (see dataFolder).
func folderFlags(name, usage string, args []string, holdsData bool, define func(*flag.FlagSet)) (string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage)
		if define != nil {
			fmt.Fprintln(fs.Output())
			fs.PrintDefaults()
		}
	}
	if define != nil {
		define(fs)
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return "", err
	}
	if len(rest) != 1 {
		return "", badUsage(fs, fmt.Sprintf("give one data folder (%d given)", len(rest)))
	}
	dir := rest[0]
	if dir == "" {
		// The engine keeps a database of no folder in memory only.
		return "", badUsage(fs, "the data folder must not be empty")
	}
	if holdsData {
		if err := dataFolder(dir); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// dataFolder returns an error unless dir is a livekv data folder: one
// that holds a log (wal.Exists), empty or not. check and dump ask before
// they touch dir, which they must leave as it was: in any other folder
// engine.Open would make the log's folders, and wal.Check its LOCK.
func dataFolder(dir string) error {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("%s is not a folder (livekv serve --data makes one)", dir)
	}
	ok, err := wal.Exists(dir, nil)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s holds no livekv data (livekv serve --data, load and restore make it)", dir)
	}
	return nil
}

func check(args []string) error {
	var doRepair bool
	lim := engine.Options{SweepInterval: -1}
	dir, err := folderFlags("check", "usage: livekv check [--repair] [--max-key-size N] [--max-value-size N] DIR\n\nVerifies the snapshot and the log in DIR without changing them; exits 1 on corruption.\n"+
		"With --repair, a damaged log is truncated at its first bad record, losing what follows,\nafter DIR is copied to DIR.before-repair-TIME.", args, true,
		func(fs *flag.FlagSet) {
			fs.BoolVar(&doRepair, "repair", false, "truncate a damaged log at its first bad record, keeping a copy of DIR first")
			sizeFlags(fs, &lim)
		})
	if err != nil {
		return err
	}
	wo := &wal.Options{MaxRecord: lim.RecordLimit()}
	rep, err := wal.Check(dir, wo)
	if errors.Is(err, vfs.ErrLocked) {
		return fmt.Errorf("%w: stop the livekv using %s first", err, dir)
	}
	out := &reportWriter{w: os.Stdout}
	if errors.Is(err, wal.ErrCorrupt) && doRepair {
		out.printf("damaged: %v\n", err)
		kept, rerr := repair(dir, err, &lim)
		if rerr != nil {
			return rerr
		}
		out.printf("repaired: the log is truncated at the damage; the folder as it was is in %s\n", kept)
		rep, err = wal.Check(dir, wo)
	}
	if err != nil {
		return openHint(err, "check")
	}
	if rep.SnapshotRevision > 0 {
		out.printf("snapshot at revision %d with %d keys\n", rep.SnapshotRevision, rep.SnapshotItems)
	} else {
		out.printf("no snapshot\n")
	}
	out.printf("log: %d segments, %d transactions after the snapshot, up to revision %d\n", rep.Segments, rep.Records, rep.LastRevision)
	if rep.HistoryDamage != "" {
		out.printf("history damaged: %s; the next open drops the %d oldest segments, which hold only the history of changes\n", rep.HistoryDamage, rep.HistorySegmentsLost)
	}
	if rep.TornBytes > 0 {
		out.printf("torn tail: %d bytes of an interrupted write, which the next open truncates\n", rep.TornBytes)
	}
	out.printf("ok\n")
	return out.err // a verdict not written is lost: exit 1
}

// record is one item as dump writes it and load reads it.
type record struct {
	Key            string     `json:"key"`
	Value          string     `json:"value"`
	KeyBase64      []byte     `json:"keyBase64,omitempty"`   // the key, when it is not valid UTF-8 (Key is then "")
	ValueBase64    []byte     `json:"valueBase64,omitempty"` // the value, when it is not valid UTF-8
	Revision       int64      `json:"revision,omitempty"`
	CreateRevision int64      `json:"createRevision,omitempty"`
	Version        int64      `json:"version,omitempty"`
	ExpiresAt      *time.Time `json:"expiresAt,omitempty"`
}

// sizeFlags defines --max-key-size and --max-value-size on fs, into o:
// the limits of keys and values, and so of the log's records, that a
// folder written by a program with larger ones than the defaults needs to
// be read.
func sizeFlags(fs *flag.FlagSet, o *engine.Options) {
	o.MaxKeySize, o.MaxValueSize = engine.DefaultMaxKeySize, engine.DefaultMaxValueSize
	fs.Var(sizeFlag{&o.MaxKeySize}, "max-key-size", "the largest key taken, in `bytes`, as engine.Options.MaxKeySize")
	fs.Var(sizeFlag{&o.MaxValueSize}, "max-value-size", "the largest value taken, in `bytes`, as engine.Options.MaxValueSize")
}

// sizeFlag is a flag of a size in bytes: a negative one is a usage error.
type sizeFlag struct{ n *int }

func (s sizeFlag) String() string {
	if s.n == nil {
		return "0"
	}
	return strconv.Itoa(*s.n)
}

func (s sizeFlag) Set(v string) error {
	n, err := strconv.Atoi(v)
	switch {
	case err != nil:
		return errors.New("not a whole number")
	case n < 0:
		return errors.New("must not be negative")
	}
	*s.n = n
	return nil
}

// openHint adds to err, an error of reading a folder or a backup, what
// to do about it: the damage the tools mend in a folder, a new backup
// for a damaged one (cmd "restore"), or the limits a folder or backup
// written with larger ones needs. cmd is the command that failed.
func openHint(err error, cmd string) error {
	var over *wal.RecordOverLimitError
	var item *engine.OverLimitError
	switch {
	case errors.As(err, &over), errors.As(err, &item):
		return fmt.Errorf("%w\n(it holds keys or values over this command's limits, which is not damage: give livekv %s --max-key-size and --max-value-size as large as those it was written with)", err, cmd)
	case errors.Is(err, wal.ErrCorrupt) && cmd == "restore":
		// The damage is in the backup, and restore leaves no folder.
		return fmt.Errorf("%w\n(the backup file is cut short or damaged: take a new backup with livekv backup, or restore an older one)", err)
	case errors.Is(err, wal.ErrCorrupt):
		return fmt.Errorf("%w\n(livekv serve refuses this folder; livekv check --repair truncates the log at the damage, losing what follows, after keeping a copy; livekv dump --salvage writes what is readable)", err)
	}
	return err
}

// openFolderWith is openFolder with options o.
func openFolderWith(dir string, o *engine.Options) (*engine.DB, error) {
	db, err := engine.Open(dir, o)
	if errors.Is(err, vfs.ErrLocked) {
		return nil, fmt.Errorf("%w: stop the livekv using %s first", err, dir)
	}
	return db, err
}

func dump(args []string) error {
	var doSalvage bool
	lim := engine.Options{SweepInterval: -1}
	dir, err := folderFlags("dump", "usage: livekv dump [--salvage] [--max-key-size N] [--max-value-size N] DIR > backup.jsonl\n\nWrites every item in DIR, as of one revision, as JSON lines.\n"+
		"With --salvage, a folder whose log is damaged gives the items as of the last revision\nbefore the damage; DIR is not changed (a temporary copy is read).", args, true,
		func(fs *flag.FlagSet) {
			fs.BoolVar(&doSalvage, "salvage", false, "write what is readable before a damaged log's first bad record")
			sizeFlags(fs, &lim)
		})
	if err != nil {
		return err
	}
	var db *engine.DB
	stopped := func() error { return nil }
	if doSalvage {
		g := guardTemp()
		defer g.release()
		if db, err = salvage(g, dir, &lim); err != nil {
			return err
		}
		stopped = g.stopped
		fmt.Fprintf(os.Stderr, "livekv dump: salvaged %s up to revision %d\n", dir, db.Revision())
	} else {
		if db, err = openFolderWith(dir, &lim); err != nil {
			return openHint(err, "dump") // names --salvage for damage
		}
		defer db.Close()
	}
	w := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	err = db.View(func(tx *engine.Tx) error {
		items, err := tx.Range("", "", nil)
		if err != nil {
			return err
		}
		for it, err := range items {
			if err != nil {
				return err
			}
			if err := stopped(); err != nil {
				return err
			}
			r := record{Key: it.Key, Value: it.Value, Revision: it.Revision, CreateRevision: it.CreateRevision, Version: it.Version}
			if !utf8.ValidString(r.Key) { // JSON would replace its bad bytes with U+FFFD
				r.Key, r.KeyBase64 = "", []byte(it.Key)
			}
			if !utf8.ValidString(r.Value) {
				r.Value, r.ValueBase64 = "", []byte(it.Value)
			}
			if !it.ExpiresAt.IsZero() {
				r.ExpiresAt = &it.ExpiresAt
			}
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = w.Flush()
	}
	if errors.Is(err, syscall.EPIPE) {
		// As of dump | head: only dump --salvage, which must remove its
		// copy, lives to see it; dump dies of SIGPIPE, silently.
		return errors.New("stdout was closed before the end: the output is incomplete")
	}
	return err
}

func load(args []string) error {
	lim := engine.Options{SweepInterval: -1}
	dir, err := folderFlags("load", "usage: livekv load [--max-key-size N] [--max-value-size N] DIR < backup.jsonl\n\nAdds the items of JSON lines (as livekv dump writes them) to DIR, created if\nmissing, replacing keys that exist. Items get new revisions; expired ones are skipped.", args, false,
		func(fs *flag.FlagSet) {
			sizeFlags(fs, &lim)
		})
	if err != nil {
		return err
	}
	db, err := openFolderWith(dir, &lim)
	if err != nil {
		return openHint(err, "load")
	}
	n, skipped, err := loadFrom(db, os.Stdin, &lim)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, engine.ErrTooLarge) || errors.Is(err, bufio.ErrTooLong) {
		err = fmt.Errorf("%w (the folder it came from may take more: see --max-key-size and --max-value-size)", err)
	}
	if err != nil {
		return fmt.Errorf("%w (%d items loaded before it)", err, n)
	}
	if _, err := fmt.Printf("loaded %d items into %s (%d expired, skipped)\n", n, dir, skipped); err != nil {
		return fmt.Errorf("loaded %d items into %s, but could not say so: %w", n, dir, err)
	}
	return nil
}

// reportWriter writes a command's report, keeping the first error, so
// that a report that could not be written makes the command fail.
type reportWriter struct {
	w   io.Writer
	err error
}

func (r *reportWriter) printf(format string, args ...any) {
	if r.err == nil {
		_, r.err = fmt.Fprintf(r.w, format, args...)
	}
}

// loadFrom adds the items of r to db, whose key and value limits lim
// gives, 1,000 to a transaction.
func loadFrom(db *engine.DB, r io.Reader, lim *engine.Options) (loaded, skipped int, err error) {
	sc := bufio.NewScanner(r)
	// A line holds a key and a value of up to the engine's limits, each
	// byte of which JSON may escape as \u00XX (or base64 makes 4/3 of).
	sc.Buffer(make([]byte, 64<<10), 6*(lim.MaxKeySize+lim.MaxValueSize)+64<<10)
	var batch []record
	flush := func() error {
		expired := 0
		_, err := db.Update(func(tx *engine.Tx) error {
			expired = 0
			for _, rec := range batch {
				var o *engine.SetOptions
				if rec.ExpiresAt != nil {
					// Expired, when its line was read or since.
					ttl := time.Until(*rec.ExpiresAt)
					if ttl <= 0 {
						expired++
						continue
					}
					o = &engine.SetOptions{TTL: ttl}
				}
				if _, err := tx.Set(rec.Key, rec.Value, o); err != nil {
					return fmt.Errorf("key %q: %w", rec.Key, err)
				}
			}
			return nil
		})
		if err == nil {
			loaded += len(batch) - expired
			skipped += expired
		}
		batch = batch[:0]
		return err
	}
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var rec record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return loaded, skipped, fmt.Errorf("line %d: %v", line, err)
		}
		if rec.KeyBase64 != nil {
			rec.Key = string(rec.KeyBase64)
		}
		if rec.ValueBase64 != nil {
			rec.Value = string(rec.ValueBase64)
		}
		if rec.Key == "" {
			return loaded, skipped, fmt.Errorf("line %d: no key", line)
		}
		if batch = append(batch, rec); len(batch) == 1000 {
			if err := flush(); err != nil {
				return loaded, skipped, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return loaded, skipped, err
	}
	if len(batch) > 0 {
		if err := flush(); err != nil {
			return loaded, skipped, err
		}
	}
	return loaded, skipped, nil
}

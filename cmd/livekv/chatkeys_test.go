package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/vfs"
	"github.com/stretchr/testify/require"
)

func oldKey(room string, ms int64, id string) string {
	return fmt.Sprintf("chat:msg:%s:%015d-%s", room, ms, id)
}

func newKey(room string, ms int64, id string) string {
	return fmt.Sprintf("chat:msg:%s:%013d-%s", room, chatInvBase-ms, id)
}

func msgValue(i int, ms int64) string {
	return fmt.Sprintf(`{"user":"bob","text":"message %d","ts":%d}`, i, ms)
}

// allItems reads every key from "chat:" on.
func allItems(t *testing.T, db *engine.DB) map[string]string {
	t.Helper()
	items, err := db.Range("chat:", "chat;", nil)
	require.NoError(t, err)
	got := map[string]string{}
	for it, err := range items {
		require.NoError(t, err)
		got[it.Key] = it.Value
	}
	return got
}

func TestOldChatKey(t *testing.T) {
	ms := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
	k, ok := oldChatKey(oldKey("général-café", ms, "abc123"))
	require.True(t, ok)
	require.Equal(t, newKey("général-café", ms, "abc123"), k)
	for _, key := range []string{
		newKey("lobby", ms, "x"),                         // the new scheme
		"chat:room:lobby",                                // not a message
		"chat:msg:lobby",                                 // no time
		"chat:msg::000001767322245000-x",                 // no room
		"chat:msg:lobby:00176732224500-x",                // 14 digits
		"chat:msg:lobby:001767322245000x",                // no dash
		"chat:msg:lobby:00176732224500a-x",               // not a number
		"chat:msg:lobby:000000000000000-x",               // time 0
		"chat:msg:lobby:010000000000000-x",               // past 10^13
		"todo:msg:lobby:001767322245000-x",               // not the chat
		"chat:msg:lobby:+01767322245000-x",               // a sign
		"chat:msg:lobby:00176732224500\u0660-x",          // a non-ASCII digit
		"chat:msg:a:b:001767322245000-x",                 // a colon in the room
		"chat:msg:lobby:001767322245000",                 // no ID part at all
		"chat:msg:lobby:8232677755000-001767322245000-x", // new, whatever follows
	} {
		_, ok := oldChatKey(key)
		require.False(t, ok, key)
	}
}

// FuzzOldChatKey: a key read as the old scheme maps to a new-scheme key
// of the same room and ID, whose number and the old one add up to 10^13,
// and which is not read as the old scheme again.
func FuzzOldChatKey(f *testing.F) {
	f.Add(oldKey("lobby", 1767322245000, "abc123"))
	f.Add(newKey("lobby", 1767322245000, "abc123"))
	f.Add("chat:msg:lobby:000000000000001-")
	f.Add("chat:msg:x:009999999999999-y")
	f.Fuzz(func(t *testing.T, key string) {
		nk, ok := oldChatKey(key)
		if !ok {
			return
		}
		if _, again := oldChatKey(nk); again {
			t.Fatalf("%q -> %q reads as old again", key, nk)
		}
		rest := strings.TrimPrefix(key, chatMsgPrefix)
		room, tail, _ := strings.Cut(rest, ":")
		nroom, ntail, _ := strings.Cut(strings.TrimPrefix(nk, chatMsgPrefix), ":")
		if nroom != room || ntail[chatNewDigits:] != tail[chatOldDigits:] {
			t.Fatalf("%q -> %q: room or ID changed", key, nk)
		}
		ms, _ := strconv.ParseInt(tail[:chatOldDigits], 10, 64)
		inv, err := strconv.ParseInt(ntail[:chatNewDigits], 10, 64)
		if err != nil || ms+inv != chatInvBase {
			t.Fatalf("%q -> %q: %d + %d", key, nk, ms, inv)
		}
	})
}

// seedChat writes old-scheme messages: n in each room, a minute apart,
// and two new-scheme ones after them in "lobby".
func seedChat(t *testing.T, db *engine.DB, rooms []string, n int) (want map[string]string) {
	t.Helper()
	want = map[string]string{}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
	for _, room := range rooms {
		for i := range n {
			ms := t0 + int64(i)*60_000
			v := msgValue(i, ms)
			_, err := db.Set(oldKey(room, ms, fmt.Sprintf("o%d", i)), v, nil)
			require.NoError(t, err)
			want[newKey(room, ms, fmt.Sprintf("o%d", i))] = v
		}
		_, err := db.Set("chat:room:"+room, `{"created":0}`, nil)
		require.NoError(t, err)
		want["chat:room:"+room] = `{"created":0}`
	}
	for i := range 2 {
		ms := t0 + int64(n+i)*60_000
		k := newKey("lobby", ms, fmt.Sprintf("n%d", i))
		_, err := db.Set(k, msgValue(n+i, ms), nil)
		require.NoError(t, err)
		want[k] = msgValue(n+i, ms)
	}
	return want
}

// TestMigrateChatKeys: 60 old-scheme messages in a room, and some of the
// new one, end up all new, so that a range from the room's prefix reads
// them newest first, each once; a second run writes nothing. Keys that
// only look like messages stay, and a key that expires keeps its expiry.
func TestMigrateChatKeys(t *testing.T) {
	db, err := engine.Open("db", &engine.Options{FS: vfs.NewMemFS(), SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	want := seedChat(t, db, []string{"lobby", "général", "z"}, 60)
	for _, k := range []string{"chat:msg:lobby:0abc", "chat:msg:lobby", "chat:msgx"} {
		_, err := db.Set(k, "other", nil)
		require.NoError(t, err)
		want[k] = "other"
	}
	ms := int64(1767322245000)
	_, err = db.Set(oldKey("ttl", ms, "t"), "expires", &engine.SetOptions{TTL: time.Hour})
	require.NoError(t, err)
	// The same message under both keys, as a rewrite by hand could leave
	// it, and a different one under a key the rewrite needs.
	_, err = db.Set(oldKey("dup", ms, "d"), "same", nil)
	require.NoError(t, err)
	_, err = db.Set(newKey("dup", ms, "d"), "same", nil)
	require.NoError(t, err)
	_, err = db.Set(oldKey("dup", ms, "e"), "mine", nil)
	require.NoError(t, err)
	_, err = db.Set(newKey("dup", ms, "e"), "theirs", nil)
	require.NoError(t, err)
	want[newKey("dup", ms, "d")] = "same"
	want[newKey("dup", ms, "e")] = "theirs"
	want[newKey("dup", ms, "e")+"~"] = "mine"

	count, err := countOldChatKeys(db)
	require.NoError(t, err)
	require.Equal(t, 3*60+3, count)
	var logged []string
	logf := func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }
	n, err := migrateChatKeys(db, logf)
	require.NoError(t, err)
	require.Equal(t, 3*60+3, n)
	require.Len(t, logged, 1)
	require.Contains(t, logged[0], "rewrote 183 message keys")

	got := allItems(t, db)
	ttlKey := newKey("ttl", ms, "t")
	require.Equal(t, "expires", got[ttlKey])
	delete(got, ttlKey)
	require.Equal(t, want, got)
	it, err := db.Get(ttlKey)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Hour), it.ExpiresAt, time.Minute)

	// The room's first page is its newest 50, newest first; the rest follow.
	items, err := db.Prefix("chat:msg:lobby:", nil)
	require.NoError(t, err)
	var order []string
	for it, err := range items {
		require.NoError(t, err)
		if it.Value != "other" {
			order = append(order, it.Value)
		}
	}
	require.Len(t, order, 62)
	for i, v := range order {
		require.Contains(t, v, fmt.Sprintf(`"text":"message %d"`, 61-i))
	}

	count, err = countOldChatKeys(db)
	require.NoError(t, err)
	require.Zero(t, count)
	rev := db.Revision()
	n, err = migrateChatKeys(db, logf)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, rev, db.Revision(), "nothing written the second time")
	require.Len(t, logged, 1)
}

// TestMigrateChatKeysCrash: a rewrite that fails at any write to the log,
// then a crash, leaves each message under exactly one key, with its
// value; the next run finishes the job.
func TestMigrateChatKeysCrash(t *testing.T) {
	for _, k := range []int{1, 2, 3, 6, 9, 11} {
		t.Run(strconv.Itoa(k), func(t *testing.T) {
			fsys := vfs.NewMemFS()
			db, err := engine.Open("db", &engine.Options{FS: fsys, SweepInterval: -1})
			require.NoError(t, err)
			want := seedChat(t, db, []string{"a", "b", "c"}, 3*chatBatch/2)
			fsys.FailAt(k, true)
			_, err = migrateChatKeys(db, t.Logf)
			require.Error(t, err)
			require.True(t, errors.Is(err, vfs.ErrInjected), "%v", err)
			db.Close()

			db, err = engine.Open("db", &engine.Options{FS: fsys.Crash(0.5), SweepInterval: -1})
			require.NoError(t, err)
			defer db.Close()
			// Each message once, under its old key or its new one.
			got := allItems(t, db)
			require.Len(t, got, len(want))
			for key, v := range got {
				if nk, ok := oldChatKey(key); ok {
					key = nk
				}
				require.Equal(t, want[key], v, key)
			}
			_, err = migrateChatKeys(db, t.Logf)
			require.NoError(t, err)
			require.Equal(t, want, allItems(t, db))
		})
	}
}

// TestMigrateChatKeysBytes: large messages are rewritten in several
// transactions, each under chatBatchBytes unless one message alone is
// larger.
func TestMigrateChatKeysBytes(t *testing.T) {
	defer func(n int) { chatBatchBytes = n }(chatBatchBytes)
	chatBatchBytes = 10_000
	db, err := engine.Open("db", &engine.Options{FS: vfs.NewMemFS(), SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	want := map[string]string{}
	ms := int64(1767322245000)
	for i := range 40 {
		v := strings.Repeat(string(rune('a'+i%26)), 3000)
		if i == 7 {
			v = strings.Repeat("z", 25_000) // over the bound alone
		}
		_, err := db.Set(oldKey("big", ms+int64(i), "x"), v, nil)
		require.NoError(t, err)
		want[newKey("big", ms+int64(i), "x")] = v
	}
	rev := db.Revision()
	n, err := migrateChatKeys(db, t.Logf)
	require.NoError(t, err)
	require.Equal(t, 40, n)
	require.Equal(t, want, allItems(t, db))
	// 3 messages of 3,000 bytes a transaction, the large one alone: 15.
	require.Equal(t, rev+15, db.Revision())
}

// TestMigrateChatKeysOverLimit: anyone with the chat page can write an
// old key of the largest size and take its new key and those with "~"
// appended up to the limit; the rewrite leaves that message under its
// old key, logs it, and goes on with the room. A second run does the
// same and writes nothing.
func TestMigrateChatKeysOverLimit(t *testing.T) {
	db, err := engine.Open("db", &engine.Options{FS: vfs.NewMemFS(), SweepInterval: -1})
	require.NoError(t, err)
	defer db.Close()
	ms := int64(1767322245000)
	id := strings.Repeat("x", 997)
	old := oldKey("r", ms, id)
	require.Len(t, old, engine.DefaultMaxKeySize)
	want := map[string]string{old: "mine"}
	for i, k := range []string{newKey("r", ms, id), newKey("r", ms, id) + "~", newKey("r", ms, id) + "~~"} {
		want[k] = fmt.Sprint("theirs ", i)
	}
	want[newKey("r", ms+1, "a")] = msgValue(1, ms+1)
	for k, v := range want {
		if k == newKey("r", ms+1, "a") {
			k = oldKey("r", ms+1, "a") // after the one left
		}
		_, err := db.Set(k, v, nil)
		require.NoError(t, err)
	}

	for run := range 2 {
		rev := db.Revision()
		var logged []string
		logf := func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }
		n, err := migrateChatKeys(db, logf)
		require.NoError(t, err)
		require.Equal(t, want, allItems(t, db))
		left := fmt.Sprintf("chat: left 1 message keys of the old scheme as they are (the first: %q)", old[:64])
		if run == 0 {
			require.Equal(t, 1, n)
			require.Len(t, logged, 2)
			require.Contains(t, logged[0], "rewrote 1 message keys")
			require.Contains(t, logged[1], left)
		} else {
			require.Zero(t, n)
			require.Equal(t, rev, db.Revision(), "nothing written the second time")
			require.Len(t, logged, 1)
			require.Contains(t, logged[0], left)
		}
	}
}

// TestMigrateChatKeysOverRecord: with --max-value-size at 64 MiB, a
// message of the largest value under the largest old key, rewritten,
// would make a transaction over the largest log record; it stays, and
// the room's other messages are rewritten.
func TestMigrateChatKeysOverRecord(t *testing.T) {
	db, err := engine.Open("db", &engine.Options{FS: vfs.NewMemFS(), SweepInterval: -1, MaxValueSize: 64 << 20})
	require.NoError(t, err)
	defer db.Close()
	ms := int64(1767322245000)
	big := oldKey("r", ms, strings.Repeat("x", 997))
	value := strings.Repeat("v", 64<<20)
	_, err = db.Set(big, value, nil)
	require.NoError(t, err)
	for i := range 3 {
		_, err = db.Set(oldKey("r", ms+1+int64(i), "a"), msgValue(i, ms), nil)
		require.NoError(t, err)
	}
	var logged []string
	logf := func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) }
	n, err := migrateChatKeys(db, logf)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Len(t, logged, 2)
	require.Contains(t, logged[1], fmt.Sprintf("left 1 message keys of the old scheme as they are (the first: %q)", big[:64]))
	it, err := db.Get(big)
	require.NoError(t, err)
	require.Equal(t, len(value), len(it.Value))
	for i := range 3 {
		it, err := db.Get(newKey("r", ms+1+int64(i), "a"))
		require.NoError(t, err)
		require.Equal(t, msgValue(i, ms), it.Value)
	}
}

package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/livekv/livekv/engine"
)

// The chat page once keyed a message chat:msg:ROOM:MS-ID, MS the sending
// time in milliseconds, 15 digits: oldest first. It now keys it
// chat:msg:ROOM:INV-ID, INV = 10^13 - MS, 13 digits: newest first, so
// that a range from the room's prefix reads the newest page and the next
// range, from the last key read, the older ones. Keys of the old scheme
// start with "00" (MS < 10^13) and so sort before every new key (INV
// starts with 1 to 9 until the year 2255): left as they are, a room's
// first page would show its oldest old messages. The HPKV range has no
// reverse order, so the page cannot read the old keys newest first
// itself; serve rewrites them once instead (migrateChatKeys).

const (
	chatMsgPrefix = "chat:msg:"
	chatOldDigits = 15
	chatNewDigits = 13
	chatInvBase   = 10_000_000_000_000 // 10^13
	chatBatch     = 256                // old keys rewritten per transaction, at most
)

// chatBatchBytes bounds the keys and values a transaction of the rewrite
// writes, well under the log's largest record (64 MiB): messages may be
// up to a MiB each. A batch holds at least one message.
var chatBatchBytes = 8 << 20

// oldChatKey returns the new-scheme key for a message key of the old
// scheme, and false for any other key.
func oldChatKey(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, chatMsgPrefix)
	if !ok {
		return "", false
	}
	room, tail, ok := strings.Cut(rest, ":")
	if !ok || room == "" || len(tail) < chatOldDigits+1 || tail[chatOldDigits] != '-' {
		return "", false
	}
	digits := tail[:chatOldDigits]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "", false
		}
	}
	ms, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || ms <= 0 || ms >= chatInvBase {
		return "", false
	}
	return fmt.Sprintf("%s%s:%0*d%s", chatMsgPrefix, room, chatNewDigits, chatInvBase-ms, tail[chatOldDigits:]), true
}

// migrateChatKeys rewrites every chat message key of the old scheme into
// the new one, keeping its value and expiry, chatBatch keys (at most
// chatBatchBytes) per transaction: each batch writes the new keys and
// deletes the old ones at once, so that a crash midway leaves every
// message under exactly one key and the next run carries on with what is
// left. A folder with no old keys is not written to. A new key that
// exists already (the same message rewritten, or two sent in the same
// millisecond with the same ID) keeps its value: the old key is deleted
// if it holds the same, else its message goes under the new key with "~"
// appended, as often as needed. A message that cannot be rewritten for
// what it is (its new key, with the "~" it needs, over the key size
// limit; key and value over the largest transaction) stays under its old
// key, as the page could write it anyway, and is logged: anyone with the
// chat page writes these keys, and none of them may keep serve from
// starting. It returns how many keys it rewrote.
func migrateChatKeys(db *engine.DB, logf func(string, ...any)) (int, error) {
	var left chatLeft
	moved, err := chatRooms(db, func(base string) (int, error) { return migrateChatRoom(db, base, &left) })
	if moved > 0 {
		logf("chat: rewrote %d message keys of the old scheme (oldest first) into the new one (newest first)", moved)
	}
	if left.n > 0 {
		logf("chat: left %d message keys of the old scheme as they are (the first: %q): rewritten, they would be over the size limits", left.n, left.first)
	}
	return moved, err
}

// chatLeft counts the old keys the rewrite leaves, and keeps the first,
// cut to 64 bytes, for the log.
type chatLeft struct {
	n     int
	first string
}

func (l *chatLeft) add(key string) {
	if l.n == 0 {
		l.first = key[:min(len(key), 64)]
	}
	l.n++
}

// countOldChatKeys counts the chat message keys of the old scheme.
func countOldChatKeys(db *engine.DB) (int, error) {
	return chatRooms(db, func(base string) (int, error) {
		items, err := db.Range(base+"0", base+"1", &engine.RangeOptions{KeysOnly: true})
		if err != nil {
			return 0, err
		}
		n := 0
		for it, err := range items {
			if err != nil {
				return n, err
			}
			if _, ok := oldChatKey(it.Key); ok {
				n++
			}
		}
		return n, nil
	})
}

// chatRooms calls fn with the key prefix of each room that has messages,
// chat:msg:ROOM:, and returns the sum of what fn returns. A room's old
// keys lie between chat:msg:ROOM:0 and chat:msg:ROOM:1, which fn reads:
// its new keys are skipped.
func chatRooms(db *engine.DB, fn func(base string) (int, error)) (int, error) {
	sum := 0
	start := chatMsgPrefix
	end := "chat:msg;"
	for {
		// The next room from start: its first key.
		var first string
		items, err := db.Range(start, end, &engine.RangeOptions{Limit: 1, KeysOnly: true})
		if err != nil {
			return sum, err
		}
		for it, err := range items {
			if err != nil {
				return sum, err
			}
			first = it.Key
		}
		if first == "" {
			return sum, nil
		}
		room, _, ok := strings.Cut(first[len(chatMsgPrefix):], ":")
		if !ok {
			start = first + "\x00" // not a message key: next
			continue
		}
		n, err := fn(chatMsgPrefix + room + ":")
		sum += n
		if err != nil {
			return sum, err
		}
		start = chatMsgPrefix + room + ";" // past this room's keys
	}
}

// migrateChatRoom rewrites the old keys that start with base, a room's
// prefix, a batch per transaction, and adds those it leaves to left.
func migrateChatRoom(db *engine.DB, base string, left *chatLeft) (int, error) {
	moved := 0
	from := base + "0"
	for {
		n, done := 0, false
		start, last := from, ""
		_, err := db.Update(func(tx *engine.Tx) error {
			n, from, last = 0, start, ""
			items, err := tx.Range(from, base+"1", &engine.RangeOptions{Limit: chatBatch})
			if err != nil {
				return err
			}
			var batch []engine.Item
			for it, err := range items {
				if err != nil {
					return err
				}
				batch = append(batch, it)
			}
			size, read := 0, 0
			for _, it := range batch {
				key, ok := oldChatKey(it.Key)
				if ok {
					size += len(key) + len(it.Value)
					if n > 0 && size > chatBatchBytes {
						break // the next transaction's
					}
					ok, err := moveChatKey(tx, it, key)
					if err != nil {
						return err
					}
					if ok {
						n++
						last = it.Key
					} else {
						left.add(it.Key)
					}
				}
				read++
				from = it.Key + "\x00" // what a later batch reads is past it
			}
			done = len(batch) < chatBatch && read == len(batch)
			return nil
		})
		if errors.Is(err, engine.ErrTooLarge) && n == 1 {
			// One message alone, over the largest transaction with its
			// two keys (a value near --max-value-size of 64 MiB or more):
			// it stays, and the rest of the room goes on from it.
			left.add(last)
			from, err = last+"\x00", nil
			continue
		}
		if err != nil {
			return moved, fmt.Errorf("chat: rewriting the message keys of the old scheme under %q: %w", base, err)
		}
		moved += n
		if done {
			return moved, nil
		}
	}
}

// moveChatKey writes it under key and deletes it, within tx. It returns
// false, having written nothing, for a message it leaves under its old
// key: its new key is taken, and so is every one with "~" appended that
// fits under the key size limit.
func moveChatKey(tx *engine.Tx, it engine.Item, key string) (bool, error) {
	var opts *engine.SetOptions
	if !it.ExpiresAt.IsZero() {
		ttl := it.ExpiresAt.Sub(tx.Now())
		if ttl <= 0 {
			return true, tx.Delete(it.Key) // expired meanwhile: nothing to keep
		}
		opts = &engine.SetOptions{TTL: ttl}
	}
	for {
		cur, err := tx.Get(key)
		if errors.Is(err, engine.ErrNotFound) {
			break
		}
		if err != nil {
			return tooLarge(err)
		}
		if cur.Value == it.Value {
			return true, tx.Delete(it.Key)
		}
		key += "~"
	}
	if _, err := tx.Set(key, it.Value, opts); err != nil {
		return tooLarge(err)
	}
	return true, tx.Delete(it.Key)
}

// tooLarge returns false and no error for a key or value over the limits,
// which the transaction has not written, else err.
func tooLarge(err error) (bool, error) {
	if errors.Is(err, engine.ErrTooLarge) {
		return false, nil
	}
	return false, err
}

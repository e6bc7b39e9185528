package engine

// maybeCompact starts a compaction of a's chunks in the background if one
// is due and none runs. publish calls it, holding pub.mu and a.mu, on
// every node, whichever way its commits come (a write, or a replica's
// ApplyCommitted).
func (db *DB) maybeCompact(a *arena) {
	if !a.due() || !a.compacting.CompareAndSwap(false, true) {
		return
	}
	db.bg.mu.Lock()
	defer db.bg.mu.Unlock()
	if db.bg.closed {
		a.compacting.Store(false)
		return
	}
	db.bg.wg.Add(1)
	go func() {
		defer db.bg.wg.Done()
		defer a.compacting.Store(false)
		db.compact(a)
	}()
}

// compact empties the chunks of a that are less than half live: it walks
// every entry and copies each visible value and each key held in such a
// chunk into a new one. It picks the entries to move without a lock,
// from their chunk ids, and moves them a batch at a time under pub.mu,
// which keeps the visible copies from changing meanwhile, and a.mu,
// which keeps the counts and the entries' keys from being released; so
// a publish waits for at most one batch, and never for the walk's cache
// misses.
func (db *DB) compact(a *arena) {
	db.pub.mu.Lock()
	restores := a.restores
	a.mu.Lock()
	chosen := a.choose()
	// The chunks chosen, as the walk sees them: a chunk chosen stays so
	// until the end, and one not chosen can become so only in the next
	// compaction.
	moving := make([]bool, len(a.chunks))
	for id := range a.chunks {
		moving[id] = a.chunks[id].moving
	}
	a.mu.Unlock()
	db.pub.mu.Unlock()
	if chosen == 0 {
		return
	}
	chosenChunk := func(id uint32) bool { return int(id) < len(moving) && moving[id] }
	t, p := db.order.copy(func() {})
	defer db.order.unpin(p)
	batch := make([]*entry, 0, compactBatch)
	ok := true
	move := func() {
		db.pub.mu.Lock()
		defer db.pub.mu.Unlock()
		if ok = a.restores == restores && !db.closed.Load(); !ok {
			return // Restore replaced the state, or Close runs
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		committed := db.committed.Load()
		// relocate copies s, which chunk id holds, into the mover's
		// chunk, and moves its live bytes along.
		// (The chunk is moving: it is used again only at the end.) A
		// block of its own is never chosen (it is wholly live, or empty
		// with nothing to move); were one to be, the mover would not
		// copy its value (nu 0), and it would stay where it is.
		relocate := func(id uint32, s string) (ref uint64, ok bool) {
			c, nu := a.mover.put(a, s, committed)
			if nu == 0 {
				return 0, false
			}
			a.moved(id, len(s), nu, len(c))
			return db.entries.tab.ref(nu, c), true
		}
		for _, e := range batch {
			if id := e.vis.block(); id != 0 && a.chunks[id].moving {
				if ref, ok := relocate(id, e.vis.value(db.entries.tab)); ok {
					e.vis.move(ref)
				}
			}
			// The key of an entry that has left the index stays where it
			// is: its chunk is kept until the entry is reclaimed, and
			// then nothing reads it.
			if id := uint32(e.kref.Load() >> 32); id != 0 && a.chunks[id].moving && !e.gone() {
				if ref, ok := relocate(id, db.entries.tab.key(e)); ok {
					e.kref.Store(ref)
				}
			}
		}
		clear(batch)
		batch = batch[:0]
	}
	t.Scan(func(ti treeItem) bool {
		if e := t.entry(ti); chosenChunk(e.vis.block()) || chosenChunk(uint32(e.kref.Load()>>32)) {
			if batch = append(batch, e); len(batch) == compactBatch {
				move()
			}
		}
		return ok
	})
	if ok && len(batch) > 0 {
		move()
	}
	db.pub.mu.Lock()
	a.mu.Lock()
	committed := db.committed.Load()
	for id := range a.chunks {
		if c := &a.chunks[id]; c.moving {
			c.moving = false
			a.reuse(uint32(id), committed)
		}
	}
	a.compactions.Add(1)
	a.mu.Unlock()
	db.pub.mu.Unlock()
}

package input

import (
	"bytes"
	"slices"
	"sync"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
)

// indexBudget is how many uid hashes the index keeps in memory (16 bytes
// each: 16 MiB); tests set index.budget.
const indexBudget = 1 << 20

// index answers from the delivered-event index in the db. It loads an
// hour's entries the first time it is asked about that hour, as sorted
// 128-bit hashes, and keeps the hours used last within indexBudget hashes.
// An hour larger than the whole budget (over 290 events a second) is not
// kept: each question about it reads it from the db again.
//
// What is committed later is not seen, which is fine for its callers: they
// only ask about events handed over before they started (a restart, a mode
// switch), and track the rest themselves. A failed read is returned, never
// kept as an empty hour: that would send duplicates.
type index struct {
	db     seenLoader
	budget int

	mu    sync.Mutex
	hours map[int64]*hourHashes // by the hour's first second
	held  int                   // hashes in hours
	clock uint64                // counts questions, for least-recently-used
}

type hourHashes struct {
	hashes []db.UIDHash // sorted
	used   uint64
}

// seenLoader reads the index entries of an hour (db.Space).
type seenLoader interface {
	LoadSeen(sec int64, fn func(db.UIDHash)) error
}

func newIndex(db seenLoader) *index {
	return &index{db: db, budget: indexBudget, hours: map[int64]*hourHashes{}}
}

// indexError is a failed read of the index: a fault of the db, not of
// Teleport, so it is reported as such.
type indexError struct{ err error }

func (e indexError) Error() string { return "cannot read the delivered-event index: " + e.err.Error() }
func (e indexError) Unwrap() error { return e.err }

func compareHash(a, b db.UIDHash) int { return bytes.Compare(a[:], b[:]) }

// Seen implements teleportsrc.Index.
func (i *index) Seen(sec int64, uid string) (bool, error) {
	hour := sec - sec%3600
	want := db.HashUID(uid)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.clock++
	if h, ok := i.hours[hour]; ok {
		h.used = i.clock
		_, found := slices.BinarySearchFunc(h.hashes, want, compareHash)
		return found, nil
	}
	var hashes []db.UIDHash
	found, tooLarge := false, false
	err := i.db.LoadSeen(hour, func(h db.UIDHash) {
		found = found || h == want
		if !tooLarge {
			hashes = append(hashes, h)
			if len(hashes) > i.budget {
				tooLarge, hashes = true, nil
			}
		}
	})
	if err != nil {
		return false, indexError{err}
	}
	if tooLarge {
		return found, nil
	}
	slices.SortFunc(hashes, compareHash)
	i.makeRoom(len(hashes))
	i.hours[hour] = &hourHashes{hashes: hashes, used: i.clock}
	i.held += len(hashes)
	return found, nil
}

// makeRoom drops the hours used longest ago until n more hashes fit.
func (i *index) makeRoom(n int) {
	for i.held+n > i.budget && len(i.hours) > 0 {
		var oldest int64
		first := true
		for hour, h := range i.hours {
			if first || h.used < i.hours[oldest].used {
				oldest, first = hour, false
			}
		}
		i.held -= len(i.hours[oldest].hashes)
		delete(i.hours, oldest)
	}
}

package cursor

import (
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Pair is one key of a space (relative to it) and its value.
type Pair struct {
	Key string
	Val []byte
}

// IsIndexKey reports whether a key of a space belongs to the
// delivered-event index.
func IsIndexKey(key string) bool { return strings.HasPrefix(key, seenPrefix) }

// ScanPositions calls fn for every key of the space outside the
// delivered-event index: the positions and settings of the input.
func (sp *Space) ScanPositions(fn func(key string, val []byte) error) error {
	return sp.Scan("", func(key string, val []byte) error {
		if IsIndexKey(key) {
			return nil
		}
		return fn(key, val)
	})
}

// ScanRecentIndex calls fn for every index entry (a key and its packed
// uid hashes) that may hold events handed over at or after since: what a
// settle re-scan can still meet. Entries are kept per UTC hour (per date
// for those of an older version), so it returns whole hours.
func (sp *Space) ScanRecentIndex(since time.Time, fn func(key string, val []byte) error) error {
	hour := seenHour(since.Unix())
	date := hour[:len(seenPrefix)+len(time.DateOnly)+1]
	return sp.Scan(seenPrefix, func(key string, val []byte) error {
		if key < date || strings.HasPrefix(key, date+"h") && key < hour {
			return nil
		}
		return fn(key, val)
	})
}

// Replace makes pairs the space's whole content: a successor's copy of
// what the previous exporter saved.
func (sp *Space) Replace(pairs []Pair) error {
	var old [][]byte
	err := sp.db.View(func(txn *badger.Txn) error {
		p := []byte(sp.prefix)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: false})
		defer it.Close()
		for it.Seek(p); it.ValidForPrefix(p); it.Next() {
			old = append(old, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return err
	}
	wb := sp.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range old {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	wb2 := sp.db.NewWriteBatch()
	defer wb2.Cancel()
	for _, p := range pairs {
		if err := wb2.Set([]byte(sp.prefix+p.Key), p.Val); err != nil {
			return err
		}
	}
	return wb2.Flush()
}

package db

import (
	"strings"
	"time"
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
	var ops []Op
	err := sp.kv.Scan([]byte(sp.prefix), false, func(key, _ []byte) error {
		ops = append(ops, Op{Key: key, Delete: true})
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range pairs {
		ops = append(ops, Op{Key: []byte(sp.prefix + p.Key), Val: p.Val})
	}
	return sp.kv.Write(ops)
}

// Package db keeps each input's export position in the db, a key-value store
// (an embedded Badger database, or memory in tests), so a restart resumes
// where Fluent Bit last took events.
package db

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Backend is what a DB keeps its keys in: Badger on disk (Open), or
// Memory, which tests make fail on demand.
type Backend interface {
	// Get returns the value of key, or ok=false when it is not set.
	Get(key []byte) (val []byte, ok bool, err error)
	// Scan calls fn for every key under prefix, in key order (val nil
	// unless withValues); an error from fn stops it and is returned. fn
	// may keep key and val.
	Scan(prefix []byte, withValues bool, fn func(key, val []byte) error) error
	// Write applies ops in order, in one transaction where they fit.
	Write(ops []Op) error
	Close() error
}

// Op is one write: Val stored under Key, or Key deleted.
type Op struct {
	Key, Val []byte
	Delete   bool
}

// Mark is a position to persist once everything queued before it has been
// handed to Fluent Bit. Value is called only for the last Mark of each key in
// a batch, so building it may cost more than building the Mark. A nil Value
// deletes the key.
type Mark interface {
	Key() string
	Value() []byte
}

// Delete is a Mark that removes a key.
type Delete string

// Key implements Mark.
func (d Delete) Key() string { return string(d) }

// Value implements Mark.
func (d Delete) Value() []byte { return nil }

// Seen is an entry of the delivered-event index: the event with this uid,
// of this second, was handed to Fluent Bit. The index keeps entries by UTC
// hour (seen/<date>/h<hour>/<batch>), so that a reader loads only the hours
// it asks about.
type Seen struct {
	Second int64 // unix seconds
	UID    string
}

// seenHour is the key prefix of the index entries of the hour holding sec.
func seenHour(sec int64) string {
	t := time.Unix(sec, 0).UTC()
	return seenPrefix + t.Format(time.DateOnly) + "/h" + t.Format("15") + "/"
}

// UIDHash is how the index stores a uid: 16 bytes of FNV-128a, small enough
// to keep whole dates of events at hand, wide enough never to collide.
type UIDHash [16]byte

// HashUID hashes a uid for the index.
func HashUID(uid string) UIDHash {
	h := fnv.New128a()
	h.Write([]byte(uid))
	var out UIDHash
	h.Sum(out[:0])
	return out
}

const seenPrefix = "seen/"

// seenSeq keeps index keys of one process unique.
var seenSeq atomic.Uint64

// DB is one db directory's store. Inputs in one process that name the same
// directory share it (Open); Badger's directory lock keeps other processes
// out.
type DB struct {
	kv   Backend
	dir  string // the shared directory, "" if not shared
	refs int
}

var (
	openMu sync.Mutex
	open   = map[string]*DB{}
)

// New makes a store of a backend; its Close closes the backend.
func New(kv Backend) *DB { return &DB{kv: kv, refs: 1} }

// Close releases this handle; the last one closes the backend.
func (s *DB) Close() error {
	openMu.Lock()
	defer openMu.Unlock()
	if s.refs == 0 {
		return nil // already closed
	}
	s.refs--
	if s.refs > 0 {
		return nil
	}
	if s.dir != "" {
		delete(open, s.dir)
	}
	return s.kv.Close()
}

// Space returns the key space of one input (cluster name plus instance name).
func (s *DB) Space(name string) *Space {
	return &Space{kv: s.kv, prefix: name + "/"}
}

// Space is one input's keys inside a DB.
type Space struct {
	kv     Backend
	prefix string
}

// Name is the key space's name.
func (sp *Space) Name() string { return strings.TrimSuffix(sp.prefix, "/") }

// Get returns the value of key, or ok=false when it was never set.
func (sp *Space) Get(key string) (val []byte, ok bool, err error) {
	return sp.kv.Get([]byte(sp.prefix + key))
}

// Set stores one value.
func (sp *Space) Set(key string, val []byte) error {
	return sp.kv.Write([]Op{{Key: []byte(sp.prefix + key), Val: val}})
}

// Commit stores the marks of one batch, and the index entries of the events
// it carried, in one transaction, so the positions of a batch move together.
// The entries of a batch share one key per date (one key per event cost the
// export a third of its speed). A batch too large for one transaction is
// split; every mark stays self-consistent on its own.
func (sp *Space) Commit(marks []Mark, seen []Seen) error {
	ops := make([]Op, 0, len(marks)+1)
	for _, m := range marks {
		v := m.Value()
		ops = append(ops, Op{Key: []byte(sp.prefix + m.Key()), Val: v, Delete: v == nil})
	}
	byHour := map[string][]byte{}
	var hours []string
	for _, e := range seen {
		hour := seenHour(e.Second)
		if byHour[hour] == nil {
			hours = append(hours, hour)
		}
		h := HashUID(e.UID)
		byHour[hour] = append(byHour[hour], h[:]...)
	}
	for _, hour := range hours {
		key := fmt.Sprintf("%s%s%016x-%08x", sp.prefix, hour, time.Now().UnixNano(), seenSeq.Add(1))
		ops = append(ops, Op{Key: []byte(key), Val: byHour[hour]})
	}
	if len(ops) == 0 {
		return nil
	}
	return sp.kv.Write(ops)
}

// LoadSeen calls fn with every index entry of the UTC hour holding second
// sec, and with the entries an older version kept for its whole date
// (seen/<date>/<batch>; batch names are hex, so they sort before "h").
func (sp *Space) LoadSeen(sec int64, fn func(UIDHash)) error {
	hour := seenHour(sec)
	date := hour[:len(seenPrefix)+len(time.DateOnly)+1]
	err := sp.Scan(date, func(key string, val []byte) error {
		if strings.HasPrefix(key[len(date):], "h") {
			return errStopScan
		}
		return eachHash(key, val, fn)
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return err
	}
	return sp.Scan(hour, func(key string, val []byte) error { return eachHash(key, val, fn) })
}

// ScanSeen calls fn with every index entry and the first second of its
// hour (of its date, for entries of an older version), oldest first.
func (sp *Space) ScanSeen(fn func(hour int64, h UIDHash)) error {
	return sp.Scan(seenPrefix, func(key string, val []byte) error {
		rest := strings.TrimPrefix(key, seenPrefix)
		date, batch, _ := strings.Cut(rest, "/")
		t, err := time.Parse(time.DateOnly, date)
		if err != nil {
			return fmt.Errorf("index entry %s is corrupt", key)
		}
		if len(batch) > 3 && batch[0] == 'h' && batch[3] == '/' {
			hh, err := time.ParseDuration(batch[1:3] + "h")
			if err != nil {
				return fmt.Errorf("index entry %s is corrupt", key)
			}
			t = t.Add(hh)
		}
		return eachHash(key, val, func(h UIDHash) { fn(t.Unix(), h) })
	})
}

var errStopScan = errors.New("stop")

func eachHash(key string, val []byte, fn func(UIDHash)) error {
	if len(val)%len(UIDHash{}) != 0 {
		return fmt.Errorf("index entry %s is corrupt", key)
	}
	for len(val) > 0 {
		fn(UIDHash(val[:16]))
		val = val[16:]
	}
	return nil
}

// Scan calls fn for every key under prefix, in key order, with the key
// relative to the space.
func (sp *Space) Scan(prefix string, fn func(key string, val []byte) error) error {
	return sp.kv.Scan([]byte(sp.prefix+prefix), true, func(key, val []byte) error {
		return fn(strings.TrimPrefix(string(key), sp.prefix), val)
	})
}

// PruneSeen deletes the index entries of dates before (YYYY-MM-DD, which
// sorts like the dates) and returns how many it removed.
func (sp *Space) PruneSeen(before string) (int, error) {
	stop := sp.prefix + seenPrefix + before
	var ops []Op
	err := sp.kv.Scan([]byte(sp.prefix+seenPrefix), false, func(key, _ []byte) error {
		if string(key) >= stop {
			return errStopScan
		}
		ops = append(ops, Op{Key: key, Delete: true})
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) || len(ops) == 0 {
		return 0, err
	}
	return len(ops), sp.kv.Write(ops)
}

// Package cursor keeps each input's export position in an embedded Badger
// store, so a restart resumes where Fluent Bit last took events.
package cursor

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Logger receives Badger's own messages.
type Logger interface {
	Errorf(format string, args ...any)
	Warnf(format string, args ...any)
	Infof(format string, args ...any)
	Debugf(format string, args ...any)
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

// Store is one Badger database. Instances in one process that name the same
// directory share it; Badger's directory lock keeps other processes out.
type Store struct {
	dir  string
	db   *badger.DB
	refs int
	stop chan struct{}
	done chan struct{}
}

var (
	openMu sync.Mutex
	open   = map[string]*Store{}
)

// gcInterval is how often the value log is compacted; positions are small
// and overwritten, so this reclaims little but keeps the disk bounded.
const gcInterval = 10 * time.Minute

// Open opens (or shares) the store in dir, creating the directory with mode
// 0700. Close must be called once per Open.
func Open(dir string, log Logger) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("db %q: %w", dir, err)
	}
	openMu.Lock()
	defer openMu.Unlock()
	if s := open[abs]; s != nil {
		s.refs++
		return s, nil
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("db %q: cannot create the directory: %w", dir, err)
	}
	removeEmptyMemtables(abs, log)
	db, err := badger.Open(smallOptions(abs, log))
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("db %q is in use by another process (another Fluent Bit?): each Fluent Bit needs its own db directory", dir)
		}
		return nil, fmt.Errorf("db %q: cannot open the position store: %w", dir, err)
	}
	s := &Store{dir: abs, db: db, refs: 1, stop: make(chan struct{}), done: make(chan struct{})}
	go s.collectGarbage()
	open[abs] = s
	return s, nil
}

// removeEmptyMemtables deletes 0-byte .mem files. A kill between Badger
// creating a memtable file and its first write leaves one, and badger.Open
// then fails with "Create a new file" (dgraph-io/badger#2207). An empty
// memtable holds no entries, so nothing is lost.
func removeEmptyMemtables(dir string, log Logger) {
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	for _, m := range mems {
		if fi, err := os.Stat(m); err == nil && fi.Size() == 0 {
			if err := os.Remove(m); err != nil {
				log.Warnf("db %q: cannot remove the empty memtable %s a crash left: %v", dir, filepath.Base(m), err)
				continue
			}
			log.Infof("db %q: removed the empty memtable %s a crash left", dir, filepath.Base(m))
		}
	}
}

// smallOptions keeps Badger small: positions are a few kilobytes, so the
// defaults (64 MB memtables, 256 MB block cache) would dwarf the data.
func smallOptions(dir string, log Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(badgerLogger{log}). // not WithLoggingLevel: it replaces the logger
		WithMemTableSize(1 << 20).
		WithNumMemtables(1).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithBaseTableSize(512 << 10).
		WithBaseLevelSize(2 << 20).
		WithValueThreshold(64 << 10). // at most 15% of the memtable
		WithValueLogFileSize(8 << 20).
		WithNumCompactors(2).
		WithNumGoroutines(1).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithMetricsEnabled(false).
		WithDetectConflicts(false)
}

func (s *Store) collectGarbage() {
	defer close(s.done)
	t := time.NewTicker(gcInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			for s.db.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

// Close releases this handle; the last one closes the database.
func (s *Store) Close() error {
	openMu.Lock()
	defer openMu.Unlock()
	if s.refs == 0 {
		return nil // already closed
	}
	s.refs--
	if s.refs > 0 {
		return nil
	}
	delete(open, s.dir)
	close(s.stop)
	<-s.done
	return s.db.Close()
}

// Space returns the key space of one input (cluster name plus instance name).
func (s *Store) Space(name string) *Space {
	return &Space{db: s.db, prefix: name + "/"}
}

// Space is one input's keys inside a Store.
type Space struct {
	db     *badger.DB
	prefix string
}

// Name is the key space's name.
func (sp *Space) Name() string { return strings.TrimSuffix(sp.prefix, "/") }

// Get returns the value of key, or ok=false when it was never set.
func (sp *Space) Get(key string) (val []byte, ok bool, err error) {
	err = sp.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(sp.prefix + key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		ok = true
		val, err = item.ValueCopy(nil)
		return err
	})
	return val, ok, err
}

// Set stores one value.
func (sp *Space) Set(key string, val []byte) error {
	return sp.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(sp.prefix+key), val)
	})
}

// Commit stores the marks of one batch, and the index entries of the events
// it carried, in one transaction, so the positions of a batch move together.
// The entries of a batch share one key per date (one key per event cost the
// export a third of its speed). A batch too large for one transaction is
// split; every mark stays self-consistent on its own.
func (sp *Space) Commit(marks []Mark, seen []Seen) error {
	type op struct {
		key []byte
		val []byte
		del bool
	}
	ops := make([]op, 0, len(marks)+1)
	for _, m := range marks {
		v := m.Value()
		ops = append(ops, op{key: []byte(sp.prefix + m.Key()), val: v, del: v == nil})
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
		ops = append(ops, op{key: []byte(key), val: byHour[hour]})
	}
	for len(ops) > 0 {
		n := 0
		err := sp.db.Update(func(txn *badger.Txn) error {
			for _, o := range ops {
				var err error
				if o.del {
					err = txn.Delete(o.key)
				} else {
					err = txn.Set(o.key, o.val)
				}
				if err != nil {
					if errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
						return nil
					}
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
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
	return sp.db.View(func(txn *badger.Txn) error {
		p := []byte(sp.prefix + prefix)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: false})
		defer it.Close()
		for it.Seek(p); it.ValidForPrefix(p); it.Next() {
			item := it.Item()
			val, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := fn(strings.TrimPrefix(string(item.Key()), sp.prefix), val); err != nil {
				return err
			}
		}
		return nil
	})
}

// PruneSeen deletes the index entries of dates before (YYYY-MM-DD, which
// sorts like the dates) and returns how many it removed.
func (sp *Space) PruneSeen(before string) (int, error) {
	p := []byte(sp.prefix + seenPrefix)
	stop := sp.prefix + seenPrefix + before
	var keys [][]byte
	err := sp.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: false})
		defer it.Close()
		for it.Seek(p); it.ValidForPrefix(p); it.Next() {
			k := it.Item().KeyCopy(nil)
			if string(k) >= stop {
				break
			}
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	wb := sp.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), wb.Flush()
}

// badgerLogger passes Badger's warnings and errors on and drops the rest
// (table and value-log chatter).
type badgerLogger struct{ l Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Errorf("badger: "+strings.TrimSpace(f), a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warnf("badger: "+strings.TrimSpace(f), a...) }
func (b badgerLogger) Infof(string, ...any)        {}
func (b badgerLogger) Debugf(string, ...any)       {}

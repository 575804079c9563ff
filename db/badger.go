package db

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// gcInterval is how often the value log is compacted; positions are small
// and overwritten, so this reclaims little but keeps the disk bounded.
const gcInterval = 10 * time.Minute

// Open opens (or shares) the Badger db in dir, creating the directory
// with mode 0700. Close must be called once per Open.
func Open(dir string, log Logger) (*DB, error) {
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
	removeEmptyLogs(abs, log)
	db, err := badger.Open(smallOptions(abs, log))
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("db %q is in use by another process (another Fluent Bit?): each Fluent Bit needs its own db directory", dir)
		}
		return nil, fmt.Errorf("db %q: cannot open it: %w", dir, err)
	}
	kv := &badgerKV{db: db, stop: make(chan struct{}), done: make(chan struct{})}
	go kv.collectGarbage(gcInterval)
	s := &DB{kv: kv, dir: abs, refs: 1}
	open[abs] = s
	return s, nil
}

// removeEmptyLogs deletes 0-byte memtable (.mem) and value log (.vlog)
// files. A kill between Badger creating one and its first write leaves it
// empty, and badger.Open then fails with "Create a new file"
// (dgraph-io/badger#2207). An empty file holds no entries, so nothing is
// lost.
func removeEmptyLogs(dir string, log Logger) {
	for _, pattern := range []string{"*.mem", "*.vlog"} {
		files, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && fi.Size() == 0 {
				if err := os.Remove(f); err != nil {
					log.Warnf("db %q: cannot remove the empty %s a crash left: %v", dir, filepath.Base(f), err)
					continue
				}
				log.Infof("db %q: removed the empty %s a crash left", dir, filepath.Base(f))
			}
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

// badgerKV is the Backend on disk.
type badgerKV struct {
	db   *badger.DB
	stop chan struct{}
	done chan struct{}
}

func (b *badgerKV) collectGarbage(every time.Duration) {
	defer close(b.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			for b.db.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

func (b *badgerKV) Close() error {
	close(b.stop)
	<-b.done
	return b.db.Close()
}

func (b *badgerKV) Get(key []byte) (val []byte, ok bool, err error) {
	err = b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
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

func (b *badgerKV) Scan(prefix []byte, withValues bool, fn func(key, val []byte) error) error {
	return b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			var val []byte
			if withValues {
				var err error
				if val, err = item.ValueCopy(nil); err != nil {
					return err
				}
			}
			if err := fn(item.KeyCopy(nil), val); err != nil {
				return err
			}
		}
		return nil
	})
}

// Write splits ops that do not fit one transaction.
func (b *badgerKV) Write(ops []Op) error {
	for len(ops) > 0 {
		n := 0
		err := b.db.Update(func(txn *badger.Txn) error {
			for _, o := range ops {
				var err error
				if o.Delete {
					err = txn.Delete(o.Key)
				} else {
					err = txn.Set(o.Key, o.Val)
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

// badgerLogger passes Badger's warnings and errors on and drops the rest
// (table and value-log chatter).
type badgerLogger struct{ l Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Errorf("badger: "+strings.TrimSpace(f), a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warnf("badger: "+strings.TrimSpace(f), a...) }
func (b badgerLogger) Infof(string, ...any)        {}
func (b badgerLogger) Debugf(string, ...any)       {}

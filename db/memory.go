package db

import (
	"bytes"
	"slices"
	"strings"
	"sync"
)

// Memory is a Backend in memory that fails on demand: tests use it to show
// what the plugin does when it cannot save or read its position. Its
// content outlives Close, so a restart in a test finds it again.
type Memory struct {
	mu        sync.Mutex
	keys      map[string][]byte
	readFail  failure
	writeFail failure
}

// failure makes operations on keys containing part fail with err.
type failure struct {
	part string
	err  error
}

func (f failure) check(key []byte) error {
	if f.err != nil && strings.Contains(string(key), f.part) {
		return f.err
	}
	return nil
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{keys: map[string][]byte{}} }

// FailReads makes reads (Get, Scan) of keys or prefixes containing part
// ("" for all) fail with err, until called again with a nil err.
func (m *Memory) FailReads(part string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.readFail = failure{part, err}
}

// FailWrites makes writes touching a key containing part ("" for all) fail
// with err, none of them applied, until called again with a nil err.
func (m *Memory) FailWrites(part string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.writeFail = failure{part, err}
}

// Get implements Backend.
func (m *Memory) Get(key []byte) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.readFail.check(key); err != nil {
		return nil, false, err
	}
	v, ok := m.keys[string(key)]
	return bytes.Clone(v), ok, nil
}

// Scan implements Backend.
func (m *Memory) Scan(prefix []byte, withValues bool, fn func(key, val []byte) error) error {
	m.mu.Lock()
	if err := m.readFail.check(prefix); err != nil {
		m.mu.Unlock()
		return err
	}
	var keys []string
	for k := range m.keys {
		if strings.HasPrefix(k, string(prefix)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		if withValues {
			vals[i] = bytes.Clone(m.keys[k])
		}
	}
	m.mu.Unlock()
	for i, k := range keys {
		if err := fn([]byte(k), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// Write implements Backend: all ops or none.
func (m *Memory) Write(ops []Op) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range ops {
		if err := m.writeFail.check(o.Key); err != nil {
			return err
		}
	}
	for _, o := range ops {
		if o.Delete {
			delete(m.keys, string(o.Key))
		} else {
			m.keys[string(o.Key)] = bytes.Clone(o.Val)
		}
	}
	return nil
}

// Close implements Backend; the content stays.
func (m *Memory) Close() error { return nil }

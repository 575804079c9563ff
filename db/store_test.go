package db

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

type testLog struct{ t testing.TB }

func (l testLog) Errorf(f string, a ...any) { l.t.Logf("error: "+f, a...) }
func (l testLog) Warnf(f string, a ...any)  { l.t.Logf("warn: "+f, a...) }
func (l testLog) Infof(f string, a ...any)  { l.t.Logf("info: "+f, a...) }
func (l testLog) Debugf(f string, a ...any) {}

type mark struct{ k, v string }

func (m mark) Key() string   { return m.k }
func (m mark) Value() []byte { return []byte(m.v) }

func TestOpenCreatesPrivateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "db")
	s, err := Open(dir, testLog{t})
	require.NoError(t, err)
	defer s.Close()
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}

func TestSpacesAreIsolatedAndSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testLog{t})
	require.NoError(t, err)
	a, b := s.Space("cluster-a/teleport.0"), s.Space("cluster-b/teleport.0")
	assert.Equal(t, "cluster-a/teleport.0", a.Name())

	_, ok, err := a.Get("search")
	require.NoError(t, err)
	assert.False(t, ok)

	require.NoError(t, a.Commit([]Mark{mark{"search", "1"}, mark{"chunk", "x"}}, nil))
	require.NoError(t, a.Commit([]Mark{mark{"search", "2"}}, nil))
	require.NoError(t, b.Set("search", []byte("b")))
	require.NoError(t, s.Close())

	// Hot reload reopens the same directory in the same process.
	s, err = Open(dir, testLog{t})
	require.NoError(t, err)
	defer s.Close()
	v, ok, err := s.Space("cluster-a/teleport.0").Get("search")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "2", string(v))
	v, _, _ = s.Space("cluster-a/teleport.0").Get("chunk")
	assert.Equal(t, "x", string(v))
	v, _, _ = s.Space("cluster-b/teleport.0").Get("search")
	assert.Equal(t, "b", string(v))
}

func TestSameDirectorySharedWithinProcess(t *testing.T) {
	dir := t.TempDir()
	s1, err := Open(dir, testLog{t})
	require.NoError(t, err)
	s2, err := Open(filepath.Join(dir, "."), testLog{t})
	require.NoError(t, err)
	assert.Same(t, s1, s2)
	require.NoError(t, s1.Close())
	// Still open for the second holder.
	require.NoError(t, s2.Space("x").Set("k", []byte("v")))
	require.NoError(t, s2.Close())
}

// Too many marks for one Badger transaction (small values stay in the LSM
// tree and count against its limits).
func TestLargeCommitIsSplit(t *testing.T) {
	s, err := Open(t.TempDir(), testLog{t})
	require.NoError(t, err)
	defer s.Close()
	sp := s.Space("c/i")
	val := strings.Repeat("u", 100)
	const n = 3000
	var marks []Mark
	for i := 0; i < n; i++ {
		marks = append(marks, mark{fmt.Sprintf("k%04d", i), val})
	}
	require.NoError(t, sp.Commit(marks, nil))
	for i := 0; i < n; i++ {
		v, ok, err := sp.Get(fmt.Sprintf("k%04d", i))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, val, string(v))
	}
}

// Badger's warnings and errors reach the input's log; its chatter does not.
func TestBadgerLogsThroughTheLogger(t *testing.T) {
	l := &testenv.Log{}
	opt := smallOptions(t.TempDir(), l)
	opt.Warningf("compaction of %d tables failed", 2)
	opt.Errorf("cannot open %s", "x")
	opt.Infof("replaying file %d", 1)
	opt.Debugf("lots of detail")
	assert.Equal(t, []string{"warn badger: compaction of 2 tables failed", "error badger: cannot open x"}, l.Lines())
}

// A second process on the same directory must get a clear error.
func TestSecondProcessGetsClearError(t *testing.T) {
	if dir := os.Getenv("DB_TEST_OPEN"); dir != "" {
		_, err := Open(dir, testLog{t})
		fmt.Printf("child-result: %v\n", err)
		return
	}
	dir := t.TempDir()
	s, err := Open(dir, testLog{t})
	require.NoError(t, err)
	defer s.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestSecondProcessGetsClearError$")
	cmd.Env = append(os.Environ(), "DB_TEST_OPEN="+dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), "is in use by another process (another Fluent Bit?): each Fluent Bit needs its own db directory")
}

// backends are the stores a test runs on: Badger and Memory behave alike.
func backends(t *testing.T) map[string]*DB {
	b, err := Open(t.TempDir(), testLog{t})
	require.NoError(t, err)
	m := New(NewMemory())
	t.Cleanup(func() {
		assert.NoError(t, b.Close())
		assert.NoError(t, m.Close())
	})
	return map[string]*DB{"badger": b, "memory": m}
}

func TestDeleteMarksIndexScanAndPrune(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) { testDeleteMarksIndexScanAndPrune(t, s) })
	}
}

func testDeleteMarksIndexScanAndPrune(t *testing.T, s *DB) {
	sp := s.Space("c/i")
	day := func(d int) int64 { return time.Date(2026, 1, d, 5, 30, 0, 0, time.UTC).Unix() }
	require.NoError(t, sp.Commit([]Mark{mark{"bulk/2026-01-01/a", "1"}, mark{"bulk/2026-01-01/b", "2"}, mark{"bulk/2026-01-02/c", "3"}},
		[]Seen{{day(1), "u1"}, {day(2), "u2"}, {day(3), "u3"}, {day(1), "u4"}}))
	require.NoError(t, sp.Commit(nil, []Seen{{day(1), "u5"}}))

	var keys []string
	require.NoError(t, sp.Scan("bulk/2026-01-01/", func(k string, v []byte) error {
		keys = append(keys, k+"="+string(v))
		return nil
	}))
	assert.Equal(t, []string{"bulk/2026-01-01/a=1", "bulk/2026-01-01/b=2"}, keys)

	require.NoError(t, sp.Commit([]Mark{Delete("bulk/2026-01-01/a")}, nil))
	_, ok, err := sp.Get("bulk/2026-01-01/a")
	require.NoError(t, err)
	assert.False(t, ok, "a nil value deletes")

	seen := func(sec int64) map[UIDHash]bool {
		out := map[UIDHash]bool{}
		require.NoError(t, sp.LoadSeen(sec, func(h UIDHash) { out[h] = true }))
		return out
	}
	assert.Equal(t, map[UIDHash]bool{HashUID("u1"): true, HashUID("u4"): true, HashUID("u5"): true}, seen(day(1)), "entries of several batches")
	n, err := sp.PruneSeen("2026-01-03")
	require.NoError(t, err)
	assert.Equal(t, 3, n, "two batches of 2026-01-01 and one of 2026-01-02")
	assert.Empty(t, seen(day(1)))
	assert.Empty(t, seen(day(2)))
	assert.Equal(t, map[UIDHash]bool{HashUID("u3"): true}, seen(day(3)))
	other := map[UIDHash]bool{}
	require.NoError(t, s.Space("other/i").LoadSeen(day(3), func(h UIDHash) { other[h] = true }))
	assert.Empty(t, other, "spaces stay apart")
	assert.NotEqual(t, HashUID("a"), HashUID("b"))
}

// The index is kept by UTC hour: an hour loads only its own entries, plus
// those an older version kept for the whole date. ScanSeen walks them all.
func TestIndexIsKeptByHour(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) { testIndexIsKeptByHour(t, s) })
	}
}

func testIndexIsKeptByHour(t *testing.T, s *DB) {
	sp := s.Space("c/i")
	at := func(h, m int) int64 { return time.Date(2026, 1, 1, h, m, 0, 0, time.UTC).Unix() }
	require.NoError(t, sp.Commit(nil, []Seen{{at(5, 0), "five"}, {at(5, 59), "five-59"}, {at(6, 0), "six"}, {at(23, 59), "late"}}))
	old, old2 := HashUID("old"), HashUID("old2")
	require.NoError(t, sp.Set("seen/2026-01-01/000000000000abcd-00000001", append(old[:], old2[:]...)))

	load := func(sec int64) []UIDHash {
		var out []UIDHash
		require.NoError(t, sp.LoadSeen(sec, func(h UIDHash) { out = append(out, h) }))
		return out
	}
	assert.ElementsMatch(t, []UIDHash{HashUID("old"), HashUID("old2"), HashUID("five"), HashUID("five-59")}, load(at(5, 30)))
	assert.ElementsMatch(t, []UIDHash{HashUID("old"), HashUID("old2"), HashUID("six")}, load(at(6, 1)))
	assert.ElementsMatch(t, []UIDHash{HashUID("old"), HashUID("old2"), HashUID("late")}, load(at(23, 0)))

	var keys []string
	require.NoError(t, sp.Scan("seen/", func(k string, _ []byte) error { keys = append(keys, k); return nil }))
	assert.Contains(t, keys[1], "seen/2026-01-01/h05/")

	byHour := map[int64][]UIDHash{}
	require.NoError(t, sp.ScanSeen(func(hour int64, h UIDHash) { byHour[hour] = append(byHour[hour], h) }))
	assert.Equal(t, map[int64][]UIDHash{
		at(0, 0):  {HashUID("old"), HashUID("old2")},
		at(5, 0):  {HashUID("five"), HashUID("five-59")},
		at(6, 0):  {HashUID("six")},
		at(23, 0): {HashUID("late")},
	}, byHour)
}

// A kill -9 between Badger creating a memtable file and its first write
// leaves a 0-byte .mem file, and badger.Open then fails with "Create a new
// file" (dgraph-io/badger#2207), so the plugin could not start after a crash.
func TestOpenAfterACrashLeftAnEmptyMemtable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testLog{t})
	require.NoError(t, err)
	require.NoError(t, s.Space("a").Set("pos", []byte("42")))
	require.NoError(t, s.Close())
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	next := len(mems) + 100
	require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("%05d.mem", next)), nil, 0o600))

	s, err = Open(dir, testLog{t})
	require.NoError(t, err)
	defer s.Close()
	v, ok, err := s.Space("a").Get("pos")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "42", string(v))
}

var errDiskFull = errors.New("no space left on device")

// Memory fails on demand: a failed write applies nothing, and reads fail
// only for the keys asked for.
func TestMemoryFailsOnDemand(t *testing.T) {
	m := NewMemory()
	sp := New(m).Space("c/i")
	sec := time.Date(2026, 1, 1, 5, 0, 0, 0, time.UTC).Unix()
	require.NoError(t, sp.Commit([]Mark{mark{"search", "1"}}, []Seen{{sec, "u1"}}))

	m.FailWrites("", errDiskFull)
	assert.ErrorIs(t, sp.Commit([]Mark{mark{"search", "2"}, mark{"other", "x"}}, nil), errDiskFull)
	m.FailWrites("", nil)
	v, _, err := sp.Get("search")
	require.NoError(t, err)
	assert.Equal(t, "1", string(v), "none of the failed batch was applied")
	_, ok, _ := sp.Get("other")
	assert.False(t, ok)

	m.FailReads("seen/", errDiskFull)
	assert.ErrorIs(t, sp.LoadSeen(sec, func(UIDHash) {}), errDiskFull)
	v, _, err = sp.Get("search")
	require.NoError(t, err, "other keys still read")
	assert.Equal(t, "1", string(v))
	m.FailReads("", nil)
	n := 0
	require.NoError(t, sp.LoadSeen(sec, func(UIDHash) { n++ }))
	assert.Equal(t, 1, n)
}

// The same holds for the value log: a 0-byte .vlog file left by a kill
// made badger.Open fail alike.
func TestOpenAfterACrashLeftAnEmptyValueLog(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testLog{t})
	require.NoError(t, err)
	require.NoError(t, s.Space("a").Set("pos", []byte("42")))
	require.NoError(t, s.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "000009.vlog"), nil, 0o600))

	s, err = Open(dir, testLog{t})
	require.NoError(t, err)
	defer s.Close()
	v, _, err := s.Space("a").Get("pos")
	require.NoError(t, err)
	assert.Equal(t, "42", string(v))
}

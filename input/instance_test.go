package input

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ugorji/go/codec"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/conf"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/emit"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc/memlog"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// fast keeps the tests quick; trimming runs all along them.
var fast = Timing{RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, PruneEvery: 5 * time.Millisecond,
	BlockedRetry: 20 * time.Millisecond}

// lines is the logger the input tests read back.
type lines = testenv.Log

var t0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

// fixture is one input against an in-memory audit log.
type fixture struct {
	log      *memlog.Log
	identity string
	db       string
	now      time.Time
	// mem, if set, is the db instead of a db directory.
	mem *db.Memory
}

func newFixture(t *testing.T) *fixture {
	srv, err := teleportfake.Start(teleportfake.Config{})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	id := filepath.Join(t.TempDir(), "identity")
	require.NoError(t, srv.WriteIdentityFile(id, teleportfake.IdentityOptions{}))
	return &fixture{log: &memlog.Log{}, identity: id, db: filepath.Join(t.TempDir(), "db"), now: t0.Add(time.Hour)}
}

func (f *fixture) start(t *testing.T, dial teleportsrc.Dialer, kv ...string) (*Instance, *lines) {
	l := &lines{}
	return f.startLogging(t, dial, l, kv...), l
}

func (f *fixture) startLogging(t *testing.T, dial teleportsrc.Dialer, l Logger, kv ...string) *Instance {
	g := conf.MapGetter{"addr": "mem:1", "identity_file": f.identity, "db": f.db, "start_time": t0.Format(time.RFC3339), "poll_interval": "100ms"}
	for i := 0; i < len(kv); i += 2 {
		g[kv[i]] = kv[i+1]
	}
	cfg, err := conf.Parse(g)
	require.NoError(t, err)
	if dial == nil {
		dial = func(context.Context, string, *teleportsrc.Credentials, time.Duration) (teleportsrc.Client, error) {
			return f.log, nil
		}
	}
	o := Options{Config: cfg, Name: "teleport.0", Log: l, Dial: dial, Now: func() time.Time { return f.now }, Timing: fast}
	if f.mem != nil {
		o.DB = db.New(f.mem)
	}
	x, err := New(o)
	require.NoError(t, err)
	x.Start()
	t.Cleanup(func() { x.Stop(time.Second) })
	return x
}

func (f *fixture) seed(n int, prefix string) []string {
	var ids []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s%03d", prefix, i)
		f.log.Add(memlog.Event(id, "user.login", t0.Add(time.Duration(i+1)*time.Second)))
		ids = append(ids, id)
	}
	return ids
}

// take polls Collect until a batch with records arrives.
func take(t *testing.T, x *Instance) *emit.Batch {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b := x.Collect()
		if len(b.Records) > 0 {
			return b
		}
		x.Commit(b) // positions without records, as the plugin does
		require.False(t, time.Now().After(deadline), "no records")
		time.Sleep(5 * time.Millisecond)
	}
}

// takeN takes batches until they hold at least n records; commit says
// whether each batch is confirmed (cleanup called) as Fluent Bit would.
func takeN(t *testing.T, x *Instance, n int, commit bool) []string {
	t.Helper()
	var ids []string
	for len(ids) < n {
		b := take(t, x)
		ids = append(ids, uidsOf(t, b)...)
		if commit {
			x.Commit(b)
		}
	}
	return ids
}

func uidsOf(t *testing.T, b *emit.Batch) []string {
	buf := make([]byte, b.Size)
	b.CopyTo(buf)
	dec := codec.NewDecoderBytes(buf, emit.Handle())
	var out []string
	for {
		var ev []any
		if err := dec.Decode(&ev); err != nil {
			break
		}
		out = append(out, ev[1].(map[string]any)["uid"].(string))
	}
	return out
}

func TestPositionMovesOnlyWithCommit(t *testing.T) {
	f := newFixture(t)
	ids := f.seed(100, "e")
	x, _ := f.start(t, nil, "batch_max_records", "30")
	confirmed := takeN(t, x, 30, true)
	require.Equal(t, ids[:len(confirmed)], confirmed)
	handed := takeN(t, x, 30, false) // handed over but never confirmed: a crash before cleanup
	require.Equal(t, ids[len(confirmed):len(confirmed)+len(handed)], handed)
	x.Stop(time.Second)

	y, _ := f.start(t, nil)
	assert.Equal(t, ids[len(confirmed):], takeN(t, y, len(ids)-len(confirmed), true), "the unconfirmed batches come again, nothing is lost")
}

func TestFirstStartSavesItsStart(t *testing.T) {
	f := newFixture(t)
	x, l := f.start(t, nil, "start_time", "now")
	require.Eventually(t, func() bool { return l.Has("starting at " + f.now.Format(time.RFC3339)) }, 10*time.Second, 10*time.Millisecond)
	x.Stop(time.Second)

	// Events after the first start arrive even though "now" has moved on.
	f.log.Add(memlog.Event("late", "user.login", f.now.Add(time.Minute)))
	f.now = f.now.Add(time.Hour)
	y, _ := f.start(t, nil, "start_time", "now")
	assert.Equal(t, []string{"late"}, uidsOf(t, take(t, y)))
}

func TestChangedStartTimeIsIgnoredWithAWarning(t *testing.T) {
	f := newFixture(t)
	ids := f.seed(10, "e")
	x, _ := f.start(t, nil)
	require.Equal(t, ids, takeN(t, x, len(ids), true))
	x.Stop(time.Second)

	f.log.Add(memlog.Event("new", "user.login", t0.Add(time.Minute)))
	y, l := f.start(t, nil, "start_time", t0.Add(-24*time.Hour).Format(time.RFC3339))
	assert.Equal(t, []string{"new"}, uidsOf(t, take(t, y)), "the saved position wins")
	assert.True(t, l.Has("start_time "+t0.Add(-24*time.Hour).Format(time.RFC3339)+" is ignored"))
}

func TestPauseStopsQueries(t *testing.T) {
	f := newFixture(t)
	f.seed(5, "e")
	x, _ := f.start(t, nil)
	takeN(t, x, 5, true)
	x.Pause()
	// The fetcher stops before its next query.
	var n int
	require.Eventually(t, func() bool {
		n = len(f.log.Queries())
		time.Sleep(250 * time.Millisecond) // > 2 poll intervals
		return len(f.log.Queries()) == n
	}, 5*time.Second, time.Millisecond)
	f.log.Add(memlog.Event("after-pause", "user.login", t0.Add(time.Minute)))
	assert.Never(t, func() bool {
		queued, _ := x.audit.Len()
		return queued > 0 || len(f.log.Queries()) != n
	}, 250*time.Millisecond, 5*time.Millisecond, "the paused fetcher does not fetch after-pause")
	x.Resume()
	assert.Equal(t, []string{"after-pause"}, uidsOf(t, take(t, x)))
}

// What was fetched before a pause stays queued while paused, even if Fluent
// Bit calls collect then (it does, with several instances), and comes after
// the resume.
func TestNothingIsHandedOverWhilePaused(t *testing.T) {
	f := newFixture(t)
	ids := f.seed(5, "e")
	x, _ := f.start(t, nil)
	require.Eventually(t, func() bool { n, _ := x.audit.Len(); return n == len(ids) }, 5*time.Second, time.Millisecond, "fetched")
	x.Pause()
	b := x.Collect()
	assert.Empty(t, b.Records)
	assert.Empty(t, b.Marks, "no position moves either")
	x.Commit(b)
	x.Resume()
	assert.Equal(t, ids, uidsOf(t, take(t, x)))
}

// An identity that is not renewed is warned about once, 15 minutes before
// it expires, whatever status_interval says.
func TestWarnsOnceBeforeTheIdentityExpires(t *testing.T) {
	f := newFixture(t)
	srv, err := teleportfake.Start(teleportfake.Config{})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	expiry := time.Now().Add(time.Hour).Truncate(time.Second)
	require.NoError(t, srv.WriteIdentityFile(f.identity, teleportfake.IdentityOptions{NotAfter: expiry}))
	f.now = expiry.Add(-10 * time.Minute)
	x, l := f.start(t, nil, "status_interval", "0")
	warning := "warn identity file " + f.identity + " expires at " + expiry.UTC().Format(time.RFC3339) + " (in 10m0s) and has not been renewed"
	require.Eventually(t, func() bool { return l.Has(warning) }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, x.loadCredentials(teleportsrc.NewCredentials(credentialFiles(x.cfg)))) // as the 5 s check does
	assert.Equal(t, 1, l.Count(warning), "once")
}

func TestRetriesAndReportsConnectionErrors(t *testing.T) {
	f := newFixture(t)
	ids := f.seed(3, "e")
	var calls int
	var mu sync.Mutex
	dial := func(context.Context, string, *teleportsrc.Credentials, time.Duration) (teleportsrc.Client, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 2 {
			return nil, errors.New("dial tcp 10.0.0.1:3025: connect: connection refused")
		}
		return f.log, nil
	}
	x, l := f.start(t, dial)
	assert.Equal(t, ids, takeN(t, x, len(ids), true))
	assert.True(t, l.Has("nothing accepts connections at mem:1"))
	assert.GreaterOrEqual(t, x.Stats().Retries.Load(), int64(2))
	assert.True(t, x.Stats().Connected.Load())
}

func TestStopDoesNotWaitForTheNetwork(t *testing.T) {
	f := newFixture(t)
	block, entered := make(chan struct{}), make(chan struct{})
	defer close(block)
	dial := func(context.Context, string, *teleportsrc.Credentials, time.Duration) (teleportsrc.Client, error) {
		close(entered)
		<-block // ignores cancellation, like a stuck network call
		return f.log, nil
	}
	x, l := f.start(t, dial)
	<-entered
	begin := time.Now()
	x.Stop(200 * time.Millisecond)
	assert.Less(t, time.Since(begin), time.Second)
	assert.True(t, l.Has("did not stop within"), l.Lines())
}

// The housekeeping goroutine trims the index by the search's position while
// the search moves it (run with -race).
func TestPruningDoesNotRaceTheSearch(t *testing.T) {
	f := newFixture(t)
	ids := f.seed(300, "e")
	x, _ := f.start(t, nil, "batch_max_records", "10", "page_size", "10")
	assert.Equal(t, ids, takeN(t, x, len(ids), true))
}

// statusBlocked holds the first status line until released.
type statusBlocked struct {
	*lines
	entered, release chan struct{}
	once             sync.Once
}

func (l *statusBlocked) Infof(f string, a ...any) {
	if strings.HasPrefix(fmt.Sprintf(f, a...), "status:") {
		l.once.Do(func() { close(l.entered) })
		<-l.release
	}
	l.lines.Infof(f, a...)
}

// The status loop logs through Fluent Bit, which must not be called once
// the instance is gone: Stop waits for it like for the fetcher.
func TestStopWaitsForTheStatusLoop(t *testing.T) {
	f := newFixture(t)
	l := &statusBlocked{lines: &lines{}, entered: make(chan struct{}), release: make(chan struct{})}
	x := f.startLogging(t, nil, l, "status_interval", "10ms")
	select {
	case <-l.entered:
	case <-time.After(10 * time.Second):
		require.Fail(t, "no status line")
	}
	x.Stop(100 * time.Millisecond)
	assert.True(t, l.Has("did not stop within"), "Stop waited for the status loop")
	select {
	case <-x.done:
		assert.Fail(t, "done while the status loop still runs")
	default:
	}
	close(l.release)
	select {
	case <-x.done:
	case <-time.After(10 * time.Second):
		assert.Fail(t, "the status loop did not end")
	}
}

func TestQueueBoundsMemory(t *testing.T) {
	f := newFixture(t)
	f.seed(500, "e")
	x, _ := f.start(t, nil, "batch_max_records", "50")
	require.Eventually(t, func() bool { r, _ := x.audit.Len(); return r == 50 }, 10*time.Second, 5*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // the fetcher is blocked, not growing the queue
	r, _ := x.audit.Len()
	assert.Equal(t, 50, r)
}

package teleportsrc_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc/memlog"
)

// recording is a session: start, prints, resize, end, indexed from 0.
func recording(sid string, start time.Time, n int) []*auditlogpb.EventUnstructured {
	var evs []*auditlogpb.EventUnstructured
	for i := 0; i < n; i++ {
		typ := "print"
		switch {
		case i == 0:
			typ = "session.start"
		case i == n-1:
			typ = "session.end"
		case i%4 == 0:
			typ = "resize"
		}
		evs = append(evs, memlog.EventWith(fmt.Sprintf("%s-%02d", sid, i), typ, start.Add(time.Duration(i)*time.Second), map[string]any{"ei": float64(i), "sid": sid}))
	}
	return evs
}

// upload is the session.upload audit event of a recording, as the readers see it.
func upload(t *testing.T, sid string, at time.Time) *teleportsrc.Event {
	raw, err := proto.Marshal(memlog.EventWith("up-"+sid, "session.upload", at, map[string]any{"sid": sid, "url": "s3://recordings/" + sid}))
	require.NoError(t, err)
	ev, err := teleportsrc.ParseEvent(raw)
	require.NoError(t, err)
	return &ev
}

type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) logf(f string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l = append(l.l, fmt.Sprintf(f, a...))
}

func (l *lines) has(s string) bool { return l.count(s) > 0 }

// count is how many lines contain s.
func (l *lines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, x := range l.l {
		if strings.Contains(x, s) {
			n++
		}
	}
	return n
}

// finished polls until the sink holds a recording's final position, which
// the export hands over last, and returns it.
func finished(t *testing.T, k *sink) teleportsrc.SessionPosition {
	t.Helper()
	var last teleportsrc.SessionPosition
	require.Eventually(t, func() bool {
		p, ok := k.lastMark().(teleportsrc.SessionPosition)
		last = p
		return ok && p.Done
	}, 5*time.Second, 5*time.Millisecond)
	return last
}

func sessionCfg(l *lines) teleportsrc.SessionConfig {
	return teleportsrc.SessionConfig{Concurrency: 2, Skip: []string{"print"}, GiveUpAfter: 48 * time.Hour,
		RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, Keep: 72 * time.Hour, Logf: l.logf}
}

func runSessions(t *testing.T, m *teleportsrc.Sessions, c teleportsrc.Client, k teleportsrc.Sink) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx, c, k)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestSessionsExportRecordingsFoundInTheAuditLog(t *testing.T) {
	log := &memlog.Log{}
	now := time.Now()
	log.AddSession("s1", recording("s1", now.Add(-time.Hour), 10)...)
	var saved []teleportsrc.SessionPosition
	var mu sync.Mutex
	l := &lines{}
	cfg := sessionCfg(l)
	cfg.Save = func(p teleportsrc.SessionPosition) error {
		mu.Lock()
		defer mu.Unlock()
		saved = append(saved, p)
		return nil
	}
	m := teleportsrc.NewSessions(cfg, nil, time.Now)
	k := &sink{}
	runSessions(t, m, log, k)

	m.Watch(upload(t, "s1", now))
	m.Watch(upload(t, "s1", now)) // re-delivered: nothing new
	last := finished(t, k)
	assert.Equal(t, int64(1), m.StatsNow().Exported)

	assert.Equal(t, []string{"s1-00", "s1-04", "s1-08", "s1-09"}, k.got(), "prints are skipped by default")
	k.mu.Lock()
	for _, sid := range k.sessions {
		assert.Equal(t, "s1", sid)
	}
	k.mu.Unlock()
	mu.Lock()
	require.Len(t, saved, 1, "registered once, at once")
	assert.Equal(t, "s1", saved[0].SID)
	assert.Equal(t, now.Unix(), saved[0].Upload)
	mu.Unlock()
	assert.True(t, last.Done)
	assert.Equal(t, int64(10), last.Next)
	assert.True(t, l.has("exported the recording of session s1"))
}

func TestSessionsResumeFromTheSavedIndex(t *testing.T) {
	log := &memlog.Log{}
	log.AddSession("s2", recording("s2", time.Now(), 12)...)
	saved := map[string]teleportsrc.SessionPosition{
		"s2":   {SID: "s2", Next: 5, Upload: time.Now().Unix()},
		"done": {SID: "done", Next: 3, Upload: time.Now().Unix(), Done: true},
	}
	cfg := sessionCfg(&lines{})
	var registered atomic.Int32
	cfg.Save = func(teleportsrc.SessionPosition) error { registered.Add(1); return nil }
	m := teleportsrc.NewSessions(cfg, saved, time.Now)
	k := &sink{}
	runSessions(t, m, log, k)
	require.Eventually(t, func() bool { return m.StatsNow().Exported == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"s2-08", "s2-11"}, k.got(), "from index 5 on; prints skipped")
	m.Watch(upload(t, "done", time.Now()))
	assert.Zero(t, registered.Load(), "a finished recording is not registered (nor exported) again")
}

func TestSessionsRetryRecordingsNotUploadedYet(t *testing.T) {
	log := &memlog.Log{}
	l := &lines{}
	m := teleportsrc.NewSessions(sessionCfg(l), nil, time.Now)
	k := &sink{}
	runSessions(t, m, log, k)
	m.Watch(upload(t, "s3", time.Now()))
	require.Eventually(t, func() bool { return l.count("the recording of session s3 is not uploaded yet") >= 2 }, 5*time.Second, 5*time.Millisecond,
		"asked again after a while")
	log.AddSession("s3", recording("s3", time.Now(), 3)...)
	require.Eventually(t, func() bool { return m.StatsNow().Exported == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"s3-00", "s3-02"}, k.got())
}

func TestSessionsDeniedSayWhichRuleIsMissing(t *testing.T) {
	log := &memlog.Log{}
	log.AddSession("s4", recording("s4", time.Now(), 3)...)
	log.DenySessions.Store(true)
	l := &lines{}
	m := teleportsrc.NewSessions(sessionCfg(l), nil, time.Now)
	k := &sink{}
	runSessions(t, m, log, k)
	m.Watch(upload(t, "s4", time.Now()))
	require.Eventually(t, func() bool { return l.has("Teleport denied reading the recording of session s4") }, 5*time.Second, 5*time.Millisecond)
	assert.True(t, l.has("the role needs the rule `{resources: [session], verbs: [list, read]}`"))

	log.DenySessions.Store(false) // the role is fixed: the recording follows
	require.Eventually(t, func() bool { return m.StatsNow().Exported == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, []string{"s4-00", "s4-02"}, k.got())
}

func TestSessionsGiveUpAfter48Hours(t *testing.T) {
	log := &memlog.Log{}
	l := &lines{}
	m := teleportsrc.NewSessions(sessionCfg(l), nil, time.Now)
	k := &sink{}
	runSessions(t, m, log, k)
	m.Watch(upload(t, "gone", time.Now().Add(-49*time.Hour)))
	last := finished(t, k)
	assert.Equal(t, int64(1), m.StatsNow().GivenUp)
	assert.True(t, l.has("giving up on the recording of session gone"))
	assert.True(t, last.Done, "remembered as done, so it is not asked for again")
	assert.Equal(t, "gone", last.SID)
}

func TestSessionsFallBackToStructuredStreams(t *testing.T) {
	log := &memlog.Log{StructuredSessionsOnly: true}
	log.AddSession("s4", recording("s4", time.Now(), 6)...)
	log.AddSession("s5", recording("s5", time.Now(), 6)...)
	l := &lines{}
	m := teleportsrc.NewSessions(sessionCfg(l), nil, time.Now)
	k := &sink{}
	runSessions(t, m, log, k)
	m.Watch(upload(t, "s4", time.Now()))
	require.Eventually(t, func() bool { return m.StatsNow().Exported == 1 }, 5*time.Second, 5*time.Millisecond)
	m.Watch(upload(t, "s5", time.Now()))
	require.Eventually(t, func() bool { return m.StatsNow().Exported == 2 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1, log.Calls("StreamSession"), "asked once, then remembered")
	assert.Equal(t, 2, log.Calls("StreamSessionStructured"))
	assert.True(t, l.has("using StreamSessionEvents"))
	assert.Len(t, k.got(), 6)
}

// countingClient counts recordings streamed at the same time.
type countingClient struct {
	*memlog.Log
	now, peak atomic.Int32
	gate      chan struct{}
}

func (c *countingClient) StreamSession(ctx context.Context, sid string, start int64, fn func(*teleportsrc.Event) error) error {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	<-c.gate
	return c.Log.StreamSession(ctx, sid, start, fn)
}

func TestSessionsRespectConcurrency(t *testing.T) {
	c := &countingClient{Log: &memlog.Log{}, gate: make(chan struct{})}
	for i := 0; i < 5; i++ {
		sid := fmt.Sprint("c", i)
		c.AddSession(sid, recording(sid, time.Now(), 3)...)
	}
	m := teleportsrc.NewSessions(sessionCfg(&lines{}), nil, time.Now)
	runSessions(t, m, c, &sink{})
	for i := 0; i < 5; i++ {
		m.Watch(upload(t, fmt.Sprint("c", i), time.Now()))
	}
	require.Eventually(t, func() bool { return c.now.Load() == 2 }, 5*time.Second, 5*time.Millisecond)
	close(c.gate)
	require.Eventually(t, func() bool { return m.StatsNow().Exported == 5 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, int32(2), c.peak.Load(), "session_concurrency 2")
}

func TestStructString(t *testing.T) {
	ev := upload(t, "abc", time.Now())
	assert.Equal(t, "abc", teleportsrc.StructString(ev.Body, "sid"))
	assert.Equal(t, "session.upload", teleportsrc.StructString(ev.Body, "event"))
	assert.Empty(t, teleportsrc.StructString(ev.Body, "nope"))
}

// With every worker busy and more recordings due, the scheduler waits for a
// worker instead of spinning.
func TestSessionsSchedulerDoesNotSpin(t *testing.T) {
	c := &countingClient{Log: &memlog.Log{}, gate: make(chan struct{})}
	for i := 0; i < 4; i++ {
		sid := fmt.Sprint("w", i)
		c.AddSession(sid, recording(sid, time.Now(), 3)...)
	}
	var clock atomic.Int64
	now := func() time.Time { clock.Add(1); return time.Now() }
	cfg := sessionCfg(&lines{})
	cfg.Concurrency = 1
	m := teleportsrc.NewSessions(cfg, nil, now)
	runSessions(t, m, c, &sink{})
	for i := 0; i < 4; i++ {
		m.Watch(upload(t, fmt.Sprint("w", i), time.Now()))
	}
	require.Eventually(t, func() bool { return c.now.Load() == 1 }, 5*time.Second, 5*time.Millisecond)
	before := clock.Load()
	time.Sleep(200 * time.Millisecond) // observe an absence of work
	assert.Less(t, clock.Load()-before, int64(50), "the scheduler looked at the clock %d times in 200 ms", clock.Load()-before)
	close(c.gate)
	require.Eventually(t, func() bool { return m.StatsNow().Exported == 4 }, 5*time.Second, 5*time.Millisecond)
}

// fullQueue is a sink whose queue is full: Event blocks until ctx ends,
// as the input's queue does while Fluent Bit holds the collector back.
type fullQueue struct {
	sink
	blocked chan struct{}
	once    sync.Once
}

func (f *fullQueue) Event(ctx context.Context, e *teleportsrc.Event, after db.Mark) error {
	f.once.Do(func() { close(f.blocked) })
	<-ctx.Done()
	return ctx.Err()
}

// A connection that drops while a worker waits to hand over an event must
// not lose that event: the same Sessions object streams again after the
// reconnect, from the first event not handed over.
func TestSessionsReconnectWhileTheQueueIsFullLosesNothing(t *testing.T) {
	log := &memlog.Log{}
	log.AddSession("s1", recording("s1", time.Now(), 6)...)
	cfg := sessionCfg(&lines{})
	cfg.Skip = nil
	m := teleportsrc.NewSessions(cfg, nil, time.Now)

	full := &fullQueue{blocked: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx, log, full)
	}()
	m.Watch(upload(t, "s1", time.Now()))
	<-full.blocked
	cancel() // the connection drops
	<-done

	k := &sink{}
	runSessions(t, m, log, k)
	finished(t, k)
	assert.Equal(t, []string{"s1-00", "s1-01", "s1-02", "s1-03", "s1-04", "s1-05"}, k.got())
}

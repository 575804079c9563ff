package input

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ugorji/go/codec"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/emit"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc/memlog"
)

// seedBatch adds n events in one go (one bulk chunk per date and size).
func (f *fixture) seedBatch(n int, prefix string, from time.Time) []string {
	var ids []string
	var evs []*auditlogpb.EventUnstructured
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s%03d", prefix, i)
		evs = append(evs, memlog.Event(id, "user.login", from.Add(time.Duration(i)*time.Second)))
		ids = append(ids, id)
	}
	f.log.Add(evs...)
	return ids
}

func TestAutoModeUsesBulkExportWhereTheClusterHasIt(t *testing.T) {
	f := newFixture(t)
	f.log.Bulk = true
	ids := f.seedBatch(250, "b", t0.Add(time.Second))
	x, l := f.start(t, nil)
	assert.ElementsMatch(t, ids, takeN(t, x, len(ids), true))
	assert.Equal(t, "bulk", x.Snapshot().Mode)
	assert.True(t, l.Has("export_mode auto: the cluster supports bulk export, so the plugin uses bulk"))
	assert.Zero(t, f.log.Calls("SearchEvents"))
}

// A cluster that gains bulk export (an upgrade, a move to Teleport Cloud):
// the switch from search neither repeats the day nor loses events.
func TestSwitchFromSearchToBulk(t *testing.T) {
	f := newFixture(t)
	ids := f.seedBatch(200, "e", t0.Add(time.Second))
	x, _ := f.start(t, nil, "batch_max_records", "50")
	first := takeN(t, x, 100, true)
	x.Stop(time.Second)

	f.log.Bulk = true
	y, l := f.start(t, nil)
	rest := takeN(t, y, len(ids)-len(first), true)
	assert.ElementsMatch(t, ids, append(first, rest...), "nothing twice, nothing lost")
	assert.Equal(t, "bulk", y.Snapshot().Mode)
	assert.True(t, l.Has("switching from search to bulk export"))
	var more []string
	require.Eventually(t, func() bool {
		b := y.Collect()
		more = append(more, uidsOf(t, b)...)
		y.Commit(b)
		s := y.Snapshot()
		return s.CaughtUp && s.QueuedRecords == 0
	}, 10*time.Second, 5*time.Millisecond, "the bulk export catches up")
	assert.Empty(t, more, "nothing more once the export has caught up")
}

// drainCaughtUp takes and commits batches until the reader has caught up
// and nothing is queued, and returns the uids taken.
func drainCaughtUp(t *testing.T, x *Instance) []string {
	t.Helper()
	var got []string
	require.Eventually(t, func() bool {
		// Caught up before the take: every position it reached is queued.
		caughtUp := x.Snapshot().CaughtUp
		b := x.Collect()
		got = append(got, uidsOf(t, b)...)
		x.Commit(b)
		return caughtUp && x.Snapshot().QueuedRecords == 0
	}, 10*time.Second, 5*time.Millisecond, "the reader catches up")
	return got
}

// The switch point from search is saved: a restart after the switch goes
// on with the bulk export where it stood, instead of exporting every date
// since start_time again.
func TestRestartAfterTheSwitchToBulkResumesFromTheSwitchPoint(t *testing.T) {
	f := newFixture(t)
	f.now = t0.Add(72*time.Hour + time.Hour)
	ids := append(f.seedBatch(50, "a", t0.Add(time.Second)), f.seedBatch(50, "c", t0.Add(48*time.Hour))...)
	x, _ := f.start(t, nil)
	assert.ElementsMatch(t, ids, drainCaughtUp(t, x))
	x.Stop(time.Second)

	f.log.Bulk = true
	y, l := f.start(t, nil)
	assert.Empty(t, drainCaughtUp(t, y), "the search handed everything over")
	assert.True(t, l.Has("switching from search to bulk export"))
	y.Stop(time.Second)

	z, _ := f.start(t, nil)
	assert.Empty(t, drainCaughtUp(t, z), "a restart repeats nothing")
	assert.Equal(t, "bulk", z.Snapshot().Mode)
}

// And back: export_mode search on a cluster the bulk export was reading.
func TestSwitchFromBulkToSearch(t *testing.T) {
	f := newFixture(t)
	f.log.Bulk = true
	ids := f.seedBatch(150, "e", t0.Add(time.Second))
	x, _ := f.start(t, nil)
	assert.ElementsMatch(t, ids, takeN(t, x, len(ids), true))
	x.Stop(time.Second)

	newer := f.seedBatch(20, "n", t0.Add(10*time.Minute))
	y, l := f.start(t, nil, "export_mode", "search")
	assert.Equal(t, newer, takeN(t, y, len(newer), true), "only what the bulk export did not hand over")
	assert.True(t, l.Has("switching from bulk export to search"))
	assert.Equal(t, "search", y.Snapshot().Mode)
}

func TestExportModeBulkOnAClusterWithoutIt(t *testing.T) {
	f := newFixture(t)
	_, l := f.start(t, nil, "export_mode", "bulk")
	require.Eventually(t, func() bool {
		return l.Has("export_mode is bulk, but Teleport at mem:1 has no bulk export")
	}, 10*time.Second, 10*time.Millisecond)
}

func sessionRecording(sid string, at time.Time) []*auditlogpb.EventUnstructured {
	var evs []*auditlogpb.EventUnstructured
	for i, typ := range []string{"session.start", "print", "print", "resize", "session.end"} {
		evs = append(evs, memlog.EventWith(fmt.Sprintf("%s-%d", sid, i), typ, at.Add(time.Duration(i)*time.Second), map[string]any{"ei": float64(i), "sid": sid}))
	}
	return evs
}

// Recordings reach Fluent Bit with the session id and teleport_stream set,
// while audit events stay as Teleport's JSON has them.
func TestSessionsOnExportsRecordings(t *testing.T) {
	f := newFixture(t)
	f.log.AddSession("sess-1", sessionRecording("sess-1", t0)...)
	f.log.Add(memlog.Event("login", "user.login", t0.Add(time.Second)),
		memlog.EventWith("upload", "session.upload", t0.Add(2*time.Second), map[string]any{"sid": "sess-1"}))

	x, _ := f.start(t, nil, "sessions", "on", "types", "user.login")
	var bodies []map[string]any
	for len(bodies) < 4 {
		b := take(t, x)
		bodies = append(bodies, bodiesOf(t, b)...)
		x.Commit(b)
	}
	var audit, session []string
	for _, m := range bodies {
		if m["teleport_stream"] == "session" {
			assert.Equal(t, "sess-1", m["sid"])
			session = append(session, m["uid"].(string))
		} else {
			assert.NotContains(t, m, "teleport_stream")
			audit = append(audit, m["uid"].(string))
		}
	}
	assert.Equal(t, []string{"login"}, audit, "session.upload found the recording without being exported (types)")
	assert.Equal(t, []string{"sess-1-0", "sess-1-3", "sess-1-4"}, session, "prints skipped by default")
	assert.Equal(t, int64(3), x.Stats().SessionRecords.Load())
}

func bodiesOf(t *testing.T, b *emit.Batch) []map[string]any {
	buf := make([]byte, b.Size)
	b.CopyTo(buf)
	dec := codec.NewDecoderBytes(buf, emit.Handle())
	var out []map[string]any
	for {
		var ev []any
		if err := dec.Decode(&ev); err != nil {
			break
		}
		out = append(out, ev[1].(map[string]any))
	}
	return out
}

// Switching over from the Event Handler: start_time is at or before the last
// event it sent (its window_time), start_after_uid its id; the export begins
// right after it.
func TestStartAfterUID(t *testing.T) {
	for _, tc := range []struct{ mode, before string }{{"search", "0s"}, {"bulk", "0s"}, {"search", "20h"}, {"bulk", "20h"}} {
		mode := tc.mode
		t.Run(mode+"/start_time -"+tc.before, func(t *testing.T) {
			before, _ := time.ParseDuration(tc.before)
			f := newFixture(t)
			f.log.Bulk = mode == "bulk"
			second := t0.Add(time.Minute)
			var evs []*auditlogpb.EventUnstructured
			for i := 0; i < 6; i++ { // six events in one second
				evs = append(evs, memlog.Event(fmt.Sprint("s", i), "user.login", second.Add(time.Duration(i)*100*time.Millisecond)))
			}
			evs = append(evs, memlog.Event("before", "user.login", second.Add(-time.Second)), memlog.Event("after", "user.login", second.Add(2*time.Second)))
			f.log.Add(evs...)
			startTime := second.Add(-before).Format(time.RFC3339)
			x, l := f.start(t, nil, "export_mode", mode, "start_time", startTime, "start_after_uid", "s2")
			assert.ElementsMatch(t, []string{"s3", "s4", "s5", "after"}, takeN(t, x, 4, true))
			assert.True(t, l.Has("start_after_uid: starting right after event s2 of "+second.Format(time.RFC3339)+" (2 events of that second came before it)"))

			// Only the first start finds the event; later starts keep to
			// the saved position.
			x.Stop(time.Second)
			// Added before the start: the bulk export lists chunks again
			// only after bulkPollMin.
			f.log.Add(memlog.Event("later", "user.login", second.Add(3*time.Second)))
			y, _ := f.start(t, nil, "export_mode", mode, "start_time", startTime, "start_after_uid", "s2")
			assert.Equal(t, []string{"later"}, takeN(t, y, 1, true))
		})
	}
}

func TestStartAfterUIDNotFound(t *testing.T) {
	f := newFixture(t)
	f.log.Add(memlog.Event("a", "user.login", t0.Add(time.Minute)))
	_, l := f.start(t, nil, "start_time", t0.Add(time.Minute).Format(time.RFC3339), "start_after_uid", "nope")
	require.Eventually(t, func() bool { return l.Has("start_after_uid: no event nope between ") }, 10*time.Second, 10*time.Millisecond)
}

// exportDenied lists chunks but fails to export any, as for a role without
// the rights to read them.
type exportDenied struct{ *memlog.Log }

func (exportDenied) ExportEvents(context.Context, time.Time, string, string, func(*teleportsrc.Event, string) error) error {
	return errors.New("access denied to perform action \"list\" on \"event\"")
}

// A bulk export that fails right after connecting backs off like any other
// failure instead of reconnecting at the shortest delay forever.
func TestBulkFailuresBackOff(t *testing.T) {
	f := newFixture(t)
	f.log.Bulk = true
	f.seedBatch(10, "e", t0.Add(time.Second))
	var mu sync.Mutex
	var dials []time.Time
	dial := func(context.Context, string, *teleportsrc.Credentials, time.Duration) (teleportsrc.Client, error) {
		mu.Lock()
		defer mu.Unlock()
		dials = append(dials, time.Now())
		return exportDenied{f.log}, nil
	}
	f.start(t, dial, "export_mode", "bulk")
	const n = 8
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(dials) >= n }, 10*time.Second, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	// Delays of RetryMin, 2×, 4×, then RetryMax (±20%): from the fifth dial
	// on, dials are at least 0.8×RetryMax apart.
	for i := 5; i < n; i++ {
		assert.GreaterOrEqual(t, dials[i].Sub(dials[i-1]), fast.RetryMax*8/10, "dial %d", i+1)
	}
}

package teleportsrc_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc/memlog"
)

type nolog struct{}

func (nolog) Errorf(string, ...any) {}
func (nolog) Warnf(string, ...any)  {}
func (nolog) Infof(string, ...any)  {}
func (nolog) Debugf(string, ...any) {}

// committing is a sink that commits every position at once to a Badger
// space, like a Fluent Bit that takes every batch, and can stop after n
// events like a crash.
type committing struct {
	sp     *db.Space
	mu     sync.Mutex
	ids    []string
	stopAt int
}

var errCrash = fmt.Errorf("crash")

func (c *committing) Event(_ context.Context, ev *teleportsrc.Event, after db.Mark) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopAt > 0 && len(c.ids) >= c.stopAt {
		return errCrash
	}
	c.ids = append(c.ids, ev.ID)
	var seen []db.Seen
	if ev.Remember {
		seen = []db.Seen{{Second: ev.Seconds, UID: ev.ID}}
	}
	return c.sp.Commit([]db.Mark{after}, seen)
}

func (c *committing) Progress(_ context.Context, at db.Mark) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopAt > 0 && len(c.ids) >= c.stopAt {
		return errCrash
	}
	return c.sp.Commit([]db.Mark{at}, nil)
}

func space(t *testing.T) *db.Space {
	s, err := db.Open(t.TempDir(), nolog{})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s.Space("mem/teleport.0")
}

// bulkLog holds n events per day on days days before today, in chunks of 7.
func bulkLog(days, n int, now time.Time) (*memlog.Log, []string) {
	m := &memlog.Log{Bulk: true, ChunkSize: 7}
	var ids []string
	for d := days; d >= 0; d-- {
		day := now.UTC().Truncate(24 * time.Hour).Add(-time.Duration(d) * 24 * time.Hour)
		var evs []*auditlogpb.EventUnstructured
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("d%d-%02d", d, i)
			evs = append(evs, memlog.Event(id, []string{"user.login", "exec", "cert.create"}[i%3], day.Add(time.Duration(i+1)*time.Minute)))
			ids = append(ids, id)
		}
		m.Add(evs...)
	}
	return m, ids
}

func TestBulkExportsEveryChunkOnceAndFinishesOldDates(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	m, ids := bulkLog(4, 30, now)
	sp := space(t)
	k := &committing{sp: sp}
	b := teleportsrc.NewBulk(teleportsrc.BulkConfig{Start: now.Add(-5 * 24 * time.Hour), Concurrency: 3, Revisit: 2, Poll: time.Hour}, teleportsrc.BulkState{}, func() time.Time { return now })
	require.NoError(t, b.Pass(context.Background(), m, k))
	assert.ElementsMatch(t, ids, k.ids)

	st, err := teleportsrc.LoadBulkState(sp)
	require.NoError(t, err)
	assert.True(t, st.DoneDates["2026-05-06"], "past the revisit window: done")
	assert.True(t, st.DoneDates["2026-05-07"])
	assert.False(t, st.DoneDates["2026-05-08"], "still revisited")
	assert.Empty(t, st.Chunks["2026-05-06"], "a done date keeps no chunk positions")
	assert.Len(t, st.Chunks["2026-05-10"], 5, "30 events in chunks of 7")
	assert.Equal(t, "2026-05-08", st.OldestOpenDate())
	for _, p := range st.Chunks["2026-05-10"] {
		assert.True(t, p.Done)
	}
}

// Clear deletes every saved date and chunk position, so that a bulk export
// that starts over (after search ran) resumes nothing stale.
func TestBulkStateClear(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	m, _ := bulkLog(4, 30, now)
	sp := space(t)
	b := teleportsrc.NewBulk(teleportsrc.BulkConfig{Start: now.Add(-5 * 24 * time.Hour), Concurrency: 3, Revisit: 2, Poll: time.Hour}, teleportsrc.BulkState{}, func() time.Time { return now })
	require.NoError(t, b.Pass(context.Background(), m, &committing{sp: sp}))
	st, err := teleportsrc.LoadBulkState(sp)
	require.NoError(t, err)
	require.NotEmpty(t, st.DoneDates)
	require.NotEmpty(t, st.Chunks)

	require.NoError(t, sp.Commit(st.Clear(), nil))
	st, err = teleportsrc.LoadBulkState(sp)
	require.NoError(t, err)
	assert.Empty(t, st.DoneDates)
	assert.Empty(t, st.Chunks)
}

func TestBulkResumesFromChunkCursorsAndFindsLateChunks(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	m, ids := bulkLog(3, 40, now)
	sp := space(t)
	start := now.Add(-4 * 24 * time.Hour)
	cfg := teleportsrc.BulkConfig{Start: start, Concurrency: 2, Revisit: 2, Poll: time.Hour}

	// A crash after 50 events.
	crashed := &committing{sp: sp, stopAt: 50}
	b := teleportsrc.NewBulk(cfg, teleportsrc.BulkState{}, func() time.Time { return now })
	require.ErrorIs(t, b.Pass(context.Background(), m, crashed), errCrash)

	// Meanwhile a chunk appears late for yesterday.
	late := memlog.Event("late", "user.login", now.Add(-24*time.Hour+time.Hour))
	m.Add(late)

	st, err := teleportsrc.LoadBulkState(sp)
	require.NoError(t, err)
	k := &committing{sp: sp}
	b = teleportsrc.NewBulk(cfg, st, func() time.Time { return now })
	require.NoError(t, b.Pass(context.Background(), m, k))
	all := append(append([]string(nil), crashed.ids...), k.ids...)
	assert.ElementsMatch(t, append(ids, "late"), all, "every event once across the crash, the late chunk too")
}

func TestBulkFiltersStartTimeAndTheSwitchFromSearch(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	m, _ := bulkLog(2, 30, now)
	day := now.Truncate(24 * time.Hour)

	// types and skip_event_types hold in bulk mode too (Event Handler bug #56099).
	k := &committing{sp: space(t)}
	b := teleportsrc.NewBulk(teleportsrc.BulkConfig{Start: day.Add(10 * time.Minute), Concurrency: 2, Revisit: 2, Poll: time.Hour,
		Types: []string{"user.login", "exec"}, Skip: []string{"exec"}}, teleportsrc.BulkState{}, func() time.Time { return now })
	require.NoError(t, b.Pass(context.Background(), m, k))
	for _, id := range k.ids {
		var d, i int
		fmt.Sscanf(id, "d%d-%d", &d, &i)
		assert.Equal(t, 0, d, "nothing before start_time's date: %s", id)
		assert.GreaterOrEqual(t, i+1, 10, "nothing before start_time: %s", id)
		assert.Equal(t, 0, i%3, "only user.login: %s", id)
	}
	assert.NotEmpty(t, k.ids)

	// Switching from search at 00:22 today: the search handed over
	// everything up to minute 20, and the index holds a recent one it
	// delivered (minute 18).
	sp := space(t)
	require.NoError(t, sp.Commit(nil, []db.Seen{{Second: day.Add(18 * time.Minute).Unix(), UID: "d0-17"}}))
	after := teleportsrc.SearchPosition{From: day.Add(20 * time.Minute).Unix(), Tail: []string{"d0-19"}}
	k = &committing{sp: sp}
	switchedAt := day.Add(22 * time.Minute)
	b = teleportsrc.NewBulk(teleportsrc.BulkConfig{Start: day.Add(-48 * time.Hour), Concurrency: 2, Revisit: 2, Poll: time.Hour,
		After: &after, Settle: 5 * time.Minute, Index: indexOf(sp)}, teleportsrc.BulkState{}, func() time.Time { return switchedAt })
	require.NoError(t, b.Pass(context.Background(), m, k))
	var want []string
	// d0-i happens at minute i+1. Up to the switch point, only events recent
	// enough to be late (from minute 12, twice the settle period before
	// 00:22) can be missing: all but d0-17 (index) and d0-19 (Tail).
	want = append(want, "d0-11", "d0-12", "d0-13", "d0-14", "d0-15", "d0-16", "d0-18")
	for i := 20; i < 30; i++ {
		want = append(want, fmt.Sprintf("d0-%02d", i))
	}
	assert.ElementsMatch(t, want, k.ids, "from the switch point on, nothing twice and nothing lost")
}

type spaceIndex struct{ sp *db.Space }

func (i spaceIndex) Seen(sec int64, uid string) (bool, error) {
	found := false
	err := i.sp.LoadSeen(sec, func(h db.UIDHash) { found = found || h == db.HashUID(uid) })
	return found, err
}

func indexOf(sp *db.Space) teleportsrc.Index { return spaceIndex{sp} }

func TestProbeBulk(t *testing.T) {
	ok, err := teleportsrc.ProbeBulk(context.Background(), &memlog.Log{}, time.Now())
	require.NoError(t, err)
	assert.False(t, ok)
	ok, err = teleportsrc.ProbeBulk(context.Background(), &memlog.Log{Bulk: true}, time.Now())
	require.NoError(t, err)
	assert.True(t, ok)
}

// The search stopped in the middle of a second: the bulk export hands over
// the rest of that second, old or recent.
func TestBulkExportsTheRestOfTheSecondTheSearchStoppedIn(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	for name, sec := range map[string]time.Time{"old": now.Add(-3 * time.Hour), "recent": now.Add(-time.Minute)} {
		t.Run(name, func(t *testing.T) {
			m := &memlog.Log{Bulk: true}
			m.Add(memlog.Event("before", "x", sec.Add(-time.Second)), memlog.Event("a", "x", sec.Add(100*time.Millisecond)),
				memlog.Event("b", "x", sec.Add(200*time.Millisecond)), memlog.Event("next", "x", sec.Add(time.Second)))
			after := teleportsrc.SearchPosition{From: sec.Unix(), Tail: []string{"a"}}
			sp := space(t)
			// What the search handed over, remembered as recent events.
			require.NoError(t, sp.Commit(nil, []db.Seen{{Second: sec.Add(-time.Second).Unix(), UID: "before"}, {Second: sec.Unix(), UID: "a"}}))
			k := &committing{sp: sp}
			b := teleportsrc.NewBulk(teleportsrc.BulkConfig{Start: sec.Add(-time.Hour), Revisit: 2, Poll: time.Hour,
				After: &after, Settle: 5 * time.Minute, Index: indexOf(sp)}, teleportsrc.BulkState{}, func() time.Time { return now })
			require.NoError(t, b.Pass(context.Background(), m, k))
			assert.ElementsMatch(t, []string{"b", "next"}, k.ids)
		})
	}
}

// Run called again after the sink failed (a reconnect) resumes with the
// event the sink did not take.
func TestBulkResumesAfterASinkFailureWithoutLoss(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	m, ids := bulkLog(1, 30, now)
	sp := space(t)
	b := teleportsrc.NewBulk(teleportsrc.BulkConfig{Start: now.Add(-2 * 24 * time.Hour), Concurrency: 1, Revisit: 2, Poll: time.Hour},
		teleportsrc.BulkState{}, func() time.Time { return now })
	failed := &committing{sp: sp, stopAt: 10}
	require.ErrorIs(t, b.Pass(context.Background(), m, failed), errCrash)
	k := &committing{sp: sp}
	require.NoError(t, b.Pass(context.Background(), m, k))
	assert.ElementsMatch(t, ids, append(append([]string(nil), failed.ids...), k.ids...), "every event once")
}

// Recordings are exported only for session.upload events the bulk export
// owns: not those before start_time, nor those of start_after_uid's tail,
// nor those the search handed over before a switch (it watched them then).
// Types and skip_event_types do not matter: a recording is wanted even
// when its session.upload event is not exported.
func TestBulkWatchesOnlyTheUploadsItOwns(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	day := now.Truncate(24 * time.Hour)
	m := &memlog.Log{Bulk: true}
	for i, id := range []string{"before-start", "start-tail", "searched", "mine", "mine-too"} {
		m.Add(memlog.Event(id, "session.upload", day.Add(time.Duration(i)*time.Hour)))
	}
	after := teleportsrc.SearchPosition{From: day.Add(2 * time.Hour).Unix(), Tail: []string{"searched"}}
	var watched []string
	b := teleportsrc.NewBulk(teleportsrc.BulkConfig{Start: day.Add(time.Hour), StartTail: []string{"start-tail"}, Revisit: 2, Poll: time.Hour,
		After: &after, Skip: []string{"session.upload"}, Watch: func(ev *teleportsrc.Event) { watched = append(watched, ev.ID) }},
		teleportsrc.BulkState{}, func() time.Time { return now })
	require.NoError(t, b.Pass(context.Background(), m, &committing{sp: space(t)}))
	assert.Equal(t, []string{"mine", "mine-too"}, watched)
}

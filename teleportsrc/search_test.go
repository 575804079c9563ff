package teleportsrc_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/trace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc/memlog"
)

// sink records what a reader hands over; safe for concurrent readers.
type sink struct {
	mu       sync.Mutex
	ids      []string
	sessions []string // Session of each event
	marks    []db.Mark
	remember []bool
}

func (s *sink) Event(_ context.Context, e *teleportsrc.Event, after db.Mark) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, e.ID)
	s.sessions = append(s.sessions, e.Session)
	s.remember = append(s.remember, e.Remember)
	s.marks = append(s.marks, after)
	return nil
}

func (s *sink) Progress(_ context.Context, at db.Mark) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks = append(s.marks, at)
	return nil
}

func (s *sink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

func (s *sink) last() teleportsrc.SearchPosition {
	return s.lastMark().(teleportsrc.SearchPosition)
}

// lastMark is the newest position handed over, or nil.
func (s *sink) lastMark() db.Mark {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.marks) == 0 {
		return nil
	}
	return s.marks[len(s.marks)-1]
}

// counted counts the events the server returns to searches.
type counted struct {
	teleportsrc.Client
	events int
}

func (c *counted) SearchEvents(ctx context.Context, req *auditlogpb.GetUnstructuredEventsRequest) (teleportsrc.Page, error) {
	p, err := c.Client.SearchEvents(ctx, req)
	c.events += len(p.Events)
	return p, err
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var t0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

// drain steps until idle (caught up) or n steps.
func drain(t *testing.T, s *teleportsrc.Search, c teleportsrc.Client, k teleportsrc.Sink) {
	t.Helper()
	for i := 0; i < 100000; i++ {
		idle, err := s.Step(context.Background(), c, k)
		require.NoError(t, err)
		if idle {
			return
		}
	}
	t.Fatal("never caught up")
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func cfg() teleportsrc.SearchConfig {
	return teleportsrc.SearchConfig{Window: 24 * time.Hour, PageSize: 100, Concurrency: 2}
}

func TestSearchPagesInOrderExactlyOnce(t *testing.T) {
	m := &memlog.Log{}
	for i := 0; i < 1234; i++ {
		m.Add(memlog.Event(fmt.Sprint("e", i), "user.login", t0.Add(time.Duration(i)*time.Second)))
	}
	clk := &clock{t0.Add(2 * time.Hour)}
	s := teleportsrc.NewSearch(cfg(), teleportsrc.SearchPosition{From: t0.Unix()}, clk.now)
	k := &sink{}
	drain(t, s, m, k)
	assert.Equal(t, ids("e", 1234), k.ids)
	assert.Len(t, m.Queries(), 13, "one query per page, no re-reading")
	for _, q := range m.Queries() {
		assert.Equal(t, 100, q.Limit)
	}
}

func TestSearchShortPagesWithKeyAreNotTheEnd(t *testing.T) {
	m := &memlog.Log{MaxPage: 7}
	for i := 0; i < 50; i++ {
		m.Add(memlog.Event(fmt.Sprint("e", i), "exec", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	s := teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: time.Hour, PageSize: 500}, teleportsrc.SearchPosition{From: t0.Unix()}, (&clock{t0.Add(time.Minute)}).now)
	k := &sink{}
	drain(t, s, m, k)
	assert.Equal(t, ids("e", 50), k.ids)
}

func TestSearchWindowsAndEmptyDays(t *testing.T) {
	m := &memlog.Log{}
	// Day 0 and day 4 hold events, days 1-3 are empty; one event sits on a
	// window boundary exactly.
	m.Add(memlog.Event("a", "x", t0.Add(time.Hour)), memlog.Event("b", "x", t0.Add(24*time.Hour)), memlog.Event("c", "x", t0.Add(4*24*time.Hour+time.Minute)))
	clk := &clock{t0.Add(5 * 24 * time.Hour)}
	s := teleportsrc.NewSearch(cfg(), teleportsrc.SearchPosition{From: t0.Unix()}, clk.now)
	k := &sink{}
	drain(t, s, m, k)
	assert.Equal(t, []string{"a", "b", "c"}, k.ids, "the boundary event once")
	for _, q := range m.Queries() {
		assert.LessOrEqual(t, q.To.Sub(q.From), 24*time.Hour, "queries span at most one window")
		assert.Empty(t, q.Key, "one page per window here")
	}
	assert.Len(t, m.Queries(), 5, "five windows up to now; the last is the open one")
	assert.Equal(t, t0.Add(4*24*time.Hour+time.Minute).Unix(), s.Position().From)
}

func TestSearchEmptyWindowsMoveThePosition(t *testing.T) {
	m := &memlog.Log{}
	clk := &clock{t0.Add(3*24*time.Hour + time.Hour)}
	s := teleportsrc.NewSearch(cfg(), teleportsrc.SearchPosition{From: t0.Unix()}, clk.now)
	k := &sink{}
	drain(t, s, m, k)
	require.NotEmpty(t, k.marks)
	assert.Equal(t, t0.Add(3*24*time.Hour).Unix(), k.last().From, "the last closed window's end is saved")
}

func TestSearchPollRereadsOnlyTheLastSecond(t *testing.T) {
	m := &memlog.Log{}
	for i := 0; i < 300; i++ {
		m.Add(memlog.Event(fmt.Sprint("e", i), "x", t0.Add(time.Duration(i)*100*time.Millisecond))) // 10 per second
	}
	clk := &clock{t0.Add(time.Minute)}
	s := teleportsrc.NewSearch(cfg(), teleportsrc.SearchPosition{From: t0.Unix()}, clk.now)
	k := &sink{}
	drain(t, s, m, k)
	require.Len(t, k.ids, 300)

	// Idle polls: one query each, starting at the last second delivered.
	before := len(m.Queries())
	c := &counted{Client: m}
	for i := 0; i < 3; i++ {
		clk.t = clk.t.Add(time.Second)
		idle, err := s.Step(context.Background(), c, k)
		require.NoError(t, err)
		assert.True(t, idle)
	}
	assert.Len(t, m.Queries(), before+3)
	q := m.Queries()[len(m.Queries())-1]
	assert.Equal(t, t0.Add(29*time.Second), q.From, "fresh query from the last delivered second")
	assert.Equal(t, 30, c.events, "only that second's 10 events are re-read per poll")
	assert.Len(t, k.ids, 300, "and dropped")

	// New events arrive: only they are delivered.
	m.Add(memlog.Event("n1", "x", t0.Add(29*time.Second+950*time.Millisecond)), memlog.Event("n2", "x", t0.Add(61*time.Second)))
	clk.t = t0.Add(62 * time.Second)
	drain(t, s, m, k)
	assert.Equal(t, []string{"n1", "n2"}, k.ids[300:])
}

func TestSearchSecondGranularityBackend(t *testing.T) {
	m := &memlog.Log{Granularity: time.Second}
	for i := 0; i < 100; i++ {
		m.Add(memlog.Event(fmt.Sprint("e", i), "x", t0.Add(time.Duration(i)*250*time.Millisecond)))
	}
	clk := &clock{t0.Add(3 * time.Minute)}
	s := teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: 10 * time.Second, PageSize: 7}, teleportsrc.SearchPosition{From: t0.Unix()}, clk.now)
	k := &sink{}
	c := &counted{Client: m}
	drain(t, s, c, k)
	assert.Equal(t, ids("e", 100), k.ids, "window ends re-return a whole second; ids drop the repeats")
	assert.Greater(t, c.events, 100, "the backend did return repeats")
}

func TestSearchResumesFromAnyPositionWithoutLossOrRepeat(t *testing.T) {
	m := &memlog.Log{Granularity: time.Second}
	for i := 0; i < 200; i++ {
		m.Add(memlog.Event(fmt.Sprint("e", i), "x", t0.Add(time.Duration(i)*300*time.Millisecond)))
	}
	clk := &clock{t0.Add(time.Hour)}
	full := &sink{}
	drain(t, teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: 7 * time.Second, PageSize: 9}, teleportsrc.SearchPosition{From: t0.Unix()}, clk.now), m, full)
	require.Equal(t, ids("e", 200), full.ids)

	// A restart after any event (the committed position is the one after
	// it) continues with exactly the next event.
	for cut := 0; cut < 200; cut += 13 {
		pos := full.marks[indexOfEvent(full, cut)].(teleportsrc.SearchPosition)
		stored, err := teleportsrc.ParseSearchPosition(pos.Value())
		require.NoError(t, err)
		k := &sink{}
		drain(t, teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: 7 * time.Second, PageSize: 9}, stored, clk.now), m, k)
		assert.Equal(t, full.ids[cut+1:], k.ids, "resume after event %d", cut)
	}
}

// indexOfEvent maps the n-th delivered event to its index in marks.
func indexOfEvent(k *sink, n int) int {
	seen := -1
	for i, m := range k.marks {
		p := m.(teleportsrc.SearchPosition)
		if len(p.Tail) > 0 && p.Tail[len(p.Tail)-1] == k.ids[n] {
			seen = i
		}
	}
	return seen
}

func TestSearchFilters(t *testing.T) {
	m := &memlog.Log{}
	m.Add(memlog.Event("1", "user.login", t0.Add(time.Second)), memlog.Event("2", "cert.create", t0.Add(2*time.Second)),
		memlog.Event("3", "session.start", t0.Add(3*time.Second)), memlog.Event("4", "user.login", t0.Add(4*time.Second)))
	clk := &clock{t0.Add(time.Hour)}

	k := &sink{}
	drain(t, teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: time.Hour, PageSize: 10, Types: []string{"user.login", "cert.create"}, Skip: []string{"cert.create"}},
		teleportsrc.SearchPosition{From: t0.Unix()}, clk.now), m, k)
	assert.Equal(t, []string{"1", "4"}, k.ids)
	assert.Equal(t, []string{"user.login", "cert.create"}, m.Queries()[0].Types, "types go to the server")
	assert.Equal(t, t0.Add(4*time.Second).Unix(), k.last().From)

	k = &sink{}
	drain(t, teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: time.Hour, PageSize: 10, Skip: []string{"user.login"}},
		teleportsrc.SearchPosition{From: t0.Unix()}, clk.now), m, k)
	assert.Equal(t, []string{"2", "3"}, k.ids)
	assert.Equal(t, t0.Add(4*time.Second).Unix(), k.last().From, "skipped events still move the position")
}

func TestSearchRetriesTheSamePageAfterAnError(t *testing.T) {
	m := &memlog.Log{}
	for i := 0; i < 30; i++ {
		m.Add(memlog.Event(fmt.Sprint("e", i), "x", t0.Add(time.Duration(i)*time.Second)))
	}
	clk := &clock{t0.Add(time.Hour)}
	s := teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: time.Hour, PageSize: 10}, teleportsrc.SearchPosition{From: t0.Unix()}, clk.now)
	k := &sink{}
	// The second page fails: it is read ahead while the first is handed over.
	m.FailNext(nil, errors.New("unavailable"))
	_, err := s.Step(context.Background(), m, k)
	require.NoError(t, err)
	_, err = s.Step(context.Background(), m, k)
	require.Error(t, err)
	drain(t, s, m, k)
	assert.Equal(t, ids("e", 30), k.ids)
	assert.Equal(t, m.Queries()[1].Key, m.Queries()[2].Key, "the failed page is asked again")
}

func TestSearchStartInTheFutureWaits(t *testing.T) {
	m := &memlog.Log{}
	clk := &clock{t0}
	s := teleportsrc.NewSearch(cfg(), teleportsrc.SearchPosition{From: t0.Add(time.Hour).Unix()}, clk.now)
	idle, err := s.Step(context.Background(), m, &sink{})
	require.NoError(t, err)
	assert.True(t, idle)
	assert.Empty(t, m.Queries())
}

func TestSearchPositionSnapshotsAreStable(t *testing.T) {
	m := &memlog.Log{}
	for i := 0; i < 5; i++ {
		m.Add(memlog.Event(fmt.Sprint("e", i), "x", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	k := &sink{}
	drain(t, teleportsrc.NewSearch(cfg(), teleportsrc.SearchPosition{From: t0.Unix()}, (&clock{t0.Add(time.Minute)}).now), m, k)
	for i, mk := range k.marks {
		assert.Len(t, mk.(teleportsrc.SearchPosition).Tail, i+1, "an earlier position must not see later ids")
	}
}

func TestParsePageMatchesProtobuf(t *testing.T) {
	want := []*auditlogpb.EventUnstructured{memlog.Event("a", "user.login", t0.Add(123456789)), memlog.Event("b", "exec", t0.Add(time.Hour))}
	want[1].SetIndex(7)
	resp := &auditlogpb.EventsUnstructured{}
	resp.SetItems(want)
	resp.SetLastKey("next")
	raw, err := proto.Marshal(resp)
	require.NoError(t, err)
	p, err := teleportsrc.ParsePage(raw)
	require.NoError(t, err)
	require.Len(t, p.Events, 2)
	assert.Equal(t, "next", p.LastKey)
	for i, w := range want {
		got := p.Events[i]
		assert.Equal(t, w.GetId(), got.ID)
		assert.Equal(t, w.GetType(), got.Type)
		assert.Equal(t, w.GetIndex(), got.Index)
		assert.True(t, w.GetTime().AsTime().Equal(got.Time()))
		var body structpb.Struct
		require.NoError(t, proto.Unmarshal(got.Body, &body))
		assert.True(t, proto.Equal(w.GetUnstructured(), &body))
	}
	_, err = teleportsrc.ParsePage([]byte{0x0a, 0x10, 0x01})
	assert.Error(t, err)
}

// index is a delivered-event index in memory, by uid.
type index map[string]bool

func (i index) Seen(_ int64, uid string) (bool, error) { return i[uid], nil }

func TestSearchFindsLateEventsOnceAndOnlyRecentOnes(t *testing.T) {
	m := &memlog.Log{}
	clk := &clock{t0.Add(10 * time.Minute)}
	for i := 0; i < 20; i++ {
		m.Add(memlog.Event(fmt.Sprint("e", i), "x", clk.t.Add(-time.Duration(20-i)*time.Second)))
	}
	var logged []string
	s := teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: time.Hour, PageSize: 100, Settle: time.Minute,
		Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }},
		teleportsrc.SearchPosition{From: t0.Unix()}, clk.now)
	k := &sink{}
	drain(t, s, m, k)
	require.Len(t, k.ids, 20)
	for _, r := range k.remember {
		assert.True(t, r, "recent events go into the index")
	}

	// Visible only now: one behind the frontier but within the settle
	// period, one too old to be late.
	m.Add(memlog.Event("late", "x", clk.t.Add(-15*time.Second)), memlog.Event("ancient", "x", clk.t.Add(-5*time.Minute)))
	clk.t = clk.t.Add(31 * time.Second)
	drain(t, s, m, k)
	assert.Equal(t, []string{"late"}, k.ids[20:], "the re-scan hands over the late event, and nothing it saw before")
	assert.Equal(t, int64(1), s.Stats.Late.Load())
	require.Len(t, logged, 1)
	assert.Contains(t, logged[0], "found late event late (x)")

	// The next re-scans do not hand it over again.
	for i := 0; i < 3; i++ {
		clk.t = clk.t.Add(31 * time.Second)
		drain(t, s, m, k)
	}
	assert.Len(t, k.ids, 21)
}

func TestSearchSkipsOversizedEventsWithoutStalling(t *testing.T) {
	m := &memlog.Log{MaxEventBytes: 2000}
	var want []string
	for i := 0; i < 30; i++ {
		tm := t0.Add(time.Duration(i)*time.Second + 250*time.Millisecond)
		if i == 10 || i == 20 {
			m.Add(memlog.EventWith(fmt.Sprint("big", i), "db.session.query", tm, map[string]any{"query": strings.Repeat("x", 5000)}))
			continue
		}
		id := fmt.Sprint("e", i)
		m.Add(memlog.Event(id, "x", tm))
		want = append(want, id)
	}
	// Another event in the same second as the first oversized one, after it.
	m.Add(memlog.Event("same-second", "x", t0.Add(10*time.Second+500*time.Millisecond)))
	want = append(want[:10], append([]string{"same-second"}, want[10:]...)...)

	var logged []string
	s := teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: time.Hour, PageSize: 4,
		Logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }},
		teleportsrc.SearchPosition{From: t0.Unix()}, (&clock{t0.Add(time.Hour)}).now)
	k := &sink{}
	drain(t, s, m, k)
	assert.Equal(t, want, k.ids)
	assert.Equal(t, int64(2), s.Stats.Oversized.Load())
	require.Len(t, logged, 2)
	assert.Contains(t, logged[0], "skipping db.session.query event big10 from "+t0.Add(10*time.Second+250*time.Millisecond).Format(time.RFC3339Nano))
	assert.Contains(t, logged[0], "over the 1 MiB Teleport can return in a search")
}

func TestParseOversizedRecognisesTeleportsMessage(t *testing.T) {
	big, ok := teleportsrc.ParseOversized(errors.New("rpc error: code = Unknown desc = app.create event 5e6f is 5.0 MiB and cannot be returned because it exceeds the maximum response size of 1.0 MiB"))
	require.True(t, ok)
	assert.Equal(t, teleportsrc.Oversized{Type: "app.create", UID: "5e6f", Size: "5.0 MiB"}, big)
	_, ok = teleportsrc.ParseOversized(errors.New("connection refused"))
	assert.False(t, ok)
	_, ok = teleportsrc.ParseOversized(nil)
	assert.False(t, ok)
}

func TestSearchAfterBulkSkipsWhatTheIndexHolds(t *testing.T) {
	m := &memlog.Log{}
	for i := 0; i < 10; i++ {
		m.Add(memlog.Event(fmt.Sprint("e", i), "x", t0.Add(time.Duration(i)*time.Minute)))
	}
	idx := index{}
	for _, i := range []int{0, 1, 2, 5} { // handed over by the bulk export
		idx["e"+fmt.Sprint(i)] = true
	}
	s := teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: time.Hour, PageSize: 3, Index: idx},
		teleportsrc.SearchPosition{From: t0.Unix(), CheckUntil: t0.Add(6 * time.Minute).Unix()}, (&clock{t0.Add(time.Hour)}).now)
	k := &sink{}
	drain(t, s, m, k)
	assert.Equal(t, []string{"e3", "e4", "e6", "e7", "e8", "e9"}, k.ids)
}

// afterFirst adds events to the log once the first search has answered:
// they arrive between the reader's query and its re-scan.
type afterFirst struct {
	*memlog.Log
	add  []*auditlogpb.EventUnstructured
	done bool
}

func (a *afterFirst) SearchEvents(ctx context.Context, req *auditlogpb.GetUnstructuredEventsRequest) (teleportsrc.Page, error) {
	p, err := a.Log.SearchEvents(ctx, req)
	if !a.done {
		a.done = true
		a.Log.Add(a.add...)
	}
	return p, err
}

// Events arriving in the same second as, but after, the reader's last query
// belong to the reader, not to the re-scan: no event twice.
func TestSearchRescanLeavesTheCurrentSecondToTheReader(t *testing.T) {
	base := t0.Add(10 * time.Minute)
	m := &afterFirst{Log: &memlog.Log{}, add: []*auditlogpb.EventUnstructured{memlog.Event("b", "x", base.Add(700*time.Millisecond))}}
	m.Log.Add(memlog.Event("a", "x", base.Add(100*time.Millisecond)))
	clk := &clock{base.Add(500 * time.Millisecond)}
	s := teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: time.Hour, PageSize: 100, Settle: time.Minute},
		teleportsrc.SearchPosition{From: base.Unix()}, clk.now)
	k := &sink{}
	drain(t, s, m, k) // query, then the first re-scan, which already sees "b"
	clk.t = base.Add(900 * time.Millisecond)
	for i := 0; i < 3; i++ {
		drain(t, s, m, k)
		clk.t = clk.t.Add(40 * time.Second)
	}
	assert.Equal(t, []string{"a", "b"}, k.got())
}

// A late event the re-scan finds in the second the reader stands in becomes
// part of the position: a restart from the committed position does not hand
// it over again.
func TestSearchLateEventInTheCurrentSecondIsNotRepeatedAfterARestart(t *testing.T) {
	base := t0.Add(10 * time.Minute)
	// "c" becomes visible after the reader's query, within the part of its
	// second the query covered: only the re-scan can find it. "b", after the
	// query's end, is the reader's.
	m := &afterFirst{Log: &memlog.Log{}, add: []*auditlogpb.EventUnstructured{
		memlog.Event("c", "x", base.Add(200*time.Millisecond)), memlog.Event("b", "x", base.Add(700*time.Millisecond))}}
	m.Log.Add(memlog.Event("a", "x", base.Add(100*time.Millisecond)))
	clk := &clock{base.Add(500 * time.Millisecond)}
	sp := space(t)
	cfg := teleportsrc.SearchConfig{Window: time.Hour, PageSize: 100, Settle: time.Minute, Index: indexOf(sp)}
	k := &committing{sp: sp}
	s := teleportsrc.NewSearch(cfg, teleportsrc.SearchPosition{From: base.Unix()}, clk.now)
	drain(t, s, m, k)
	require.Equal(t, []string{"a", "c"}, k.ids, "the re-scan finds c")
	clk.t = base.Add(900 * time.Millisecond)
	drain(t, s, m, k)
	require.Equal(t, []string{"a", "c", "b"}, k.ids)

	// Restart from the last committed position.
	raw, ok, err := sp.Get(teleportsrc.SearchKey)
	require.NoError(t, err)
	require.True(t, ok)
	pos, err := teleportsrc.ParseSearchPosition(raw)
	require.NoError(t, err)
	again := &committing{sp: sp}
	for i := 0; i < 3; i++ {
		clk.t = clk.t.Add(40 * time.Second)
		drain(t, teleportsrc.NewSearch(cfg, pos, clk.now), m.Log, again)
	}
	assert.Empty(t, again.ids, "nothing handed over twice")
}

// An event too large to return exactly at the end of a closed window: the
// window is finished and the reader moves on.
func TestSearchSkipsAnOversizedEventAtTheWindowEnd(t *testing.T) {
	m := &memlog.Log{MaxEventBytes: 2000}
	// e0 leaves the position, and so the window, where they were.
	m.Add(memlog.Event("e0", "x", t0.Add(500*time.Millisecond)),
		memlog.EventWith("big", "db.session.query", t0.Add(time.Hour), map[string]any{"query": strings.Repeat("x", 5000)}),
		memlog.Event("e1", "x", t0.Add(time.Hour+500*time.Millisecond)),
		memlog.Event("e2", "x", t0.Add(2*time.Hour)))
	s := teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: time.Hour, PageSize: 10},
		teleportsrc.SearchPosition{From: t0.Unix()}, (&clock{t0.Add(5 * time.Hour)}).now)
	k := &sink{}
	drain(t, s, m, k)
	assert.Equal(t, []string{"e0", "e1", "e2"}, k.ids)
	assert.Equal(t, int64(1), s.Stats.Oversized.Load())
	assert.Greater(t, s.Position().From, t0.Add(2*time.Hour).Unix(), "closed windows move the position")
}

// keysRefused is a server that refuses every page key, as after an
// upgrade that changed their format, with its backend's message.
type keysRefused struct {
	teleportsrc.Client
	err error
}

func (c keysRefused) SearchEvents(ctx context.Context, req *auditlogpb.GetUnstructuredEventsRequest) (teleportsrc.Page, error) {
	if req.GetStartKey() != "" {
		return teleportsrc.Page{}, c.err
	}
	return c.Client.SearchEvents(ctx, req)
}

// A page key the server refuses is dropped: the reader asks again from its
// position, which loses and repeats nothing.
func TestSearchDropsAPageKeyTheServerRefuses(t *testing.T) {
	for backend, err := range map[string]error{
		"athena":    trace.BadParameter("unsupported keyset format: illegal base64 data at input byte 4"),
		"firestore": errors.New(`failed to parse startKey, expected integer but found: "{\"date\":\"2026-05-01\"}"`),
		"dynamodb":  errors.New("invalid character 'a' looking for beginning of value"),
		"aws":       errors.New("ValidationException: The provided starting key is invalid: The provided key element does not match the schema"),
	} {
		t.Run(backend, func(t *testing.T) {
			m := &memlog.Log{}
			for i := 0; i < 10; i++ {
				m.Add(memlog.Event(fmt.Sprint("e", i), "x", t0.Add(time.Duration(i)*time.Second)))
			}
			var warned []string
			s := teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: time.Hour, PageSize: 3,
				Warnf: func(f string, a ...any) { warned = append(warned, fmt.Sprintf(f, a...)) }},
				teleportsrc.SearchPosition{From: t0.Unix()}, (&clock{t0.Add(time.Hour)}).now)
			k := &sink{}
			drain(t, s, keysRefused{m, err}, k)
			assert.Equal(t, ids("e", 10), k.ids)
			require.NotEmpty(t, warned)
			assert.Contains(t, warned[0], "refused the page key")
		})
	}
	assert.False(t, teleportsrc.KeyRefused(errors.New("connection reset by peer")))
}

// Skipping an oversized event makes progress whatever the backend's time
// granularity: a backend that keeps seconds (DynamoDB, Firestore) or
// milliseconds (Athena) truncates a resume point just after the event back
// to before it, so the same event would come back every cycle. The events
// after it in its second are still handed over, once and in order.
func TestSearchSkipsOversizedEventsOnCoarseBackends(t *testing.T) {
	for _, g := range []time.Duration{time.Second, time.Millisecond, 0} {
		t.Run(fmt.Sprint(g), func(t *testing.T) {
			m := &memlog.Log{MaxEventBytes: 2000, Granularity: g}
			var want []string
			for i := 0; i < 20; i++ {
				sec := t0.Add(time.Duration(i/4) * time.Second)
				tm := sec.Add(time.Duration(i%4)*200*time.Millisecond + 100*time.Microsecond)
				if i == 9 || i == 15 { // mid-second, and last of its second
					m.Add(memlog.EventWith(fmt.Sprint("big", i), "db.session.query", tm, map[string]any{"query": strings.Repeat("x", 5000)}))
					continue
				}
				id := fmt.Sprint("e", i)
				m.Add(memlog.Event(id, "x", tm))
				want = append(want, id)
			}
			s := teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: time.Hour, PageSize: 3},
				teleportsrc.SearchPosition{From: t0.Unix()}, (&clock{t0.Add(time.Hour)}).now)
			k := &sink{}
			idle := false
			for i := 0; i < 200 && !idle; i++ {
				var err error
				idle, err = s.Step(context.Background(), m, k)
				require.NoError(t, err)
			}
			require.True(t, idle, "the reader stalls on the oversized event")
			assert.Equal(t, want, k.ids)
			assert.Equal(t, int64(2), s.Stats.Oversized.Load())
		})
	}
}

// failingIndex cannot read the db for its first fails answers; then it
// answers seen. It counts the questions.
type failingIndex struct {
	fails, asked int
	seen         bool
}

func (f *failingIndex) Seen(int64, string) (bool, error) {
	f.asked++
	if f.fails > 0 {
		f.fails--
		return false, errors.New("badger: read failed")
	}
	return f.seen, nil
}

// An index that cannot be read fails the step, which is retried: the
// reader never takes a failed read for "not handed over".
func TestSearchIndexErrorsFailTheStep(t *testing.T) {
	m := &memlog.Log{}
	m.Add(memlog.Event("e0", "x", t0.Add(time.Minute)))
	idx := &failingIndex{fails: 1}
	s := teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: time.Hour, PageSize: 10, Index: idx},
		teleportsrc.SearchPosition{From: t0.Unix(), CheckUntil: t0.Add(time.Hour).Unix()}, (&clock{t0.Add(time.Hour)}).now)
	k := &sink{}
	_, err := s.Step(context.Background(), m, k)
	require.ErrorContains(t, err, "badger: read failed")
	assert.Empty(t, k.ids)
	drain(t, s, m, k)
	assert.Equal(t, []string{"e0"}, k.ids)
}

// A re-scan that fails (here the index cannot be read) runs again at the
// next step, not half a settle period later, and sends nothing twice.
func TestSearchRescanThatFailsRunsAgainAtTheNextStep(t *testing.T) {
	log := &memlog.Log{}
	log.Add(memlog.Event("a", "user.login", t0.Add(time.Second)), memlog.Event("b", "user.login", t0.Add(2*time.Second)))
	c := &clock{t0.Add(time.Minute)}
	idx := &failingIndex{fails: 1, seen: true}
	// Resumed after b, as after a restart: the re-scan asks the index about a.
	s := teleportsrc.NewSearch(teleportsrc.SearchConfig{Settle: time.Hour, Index: idx},
		teleportsrc.SearchPosition{From: t0.Add(2 * time.Second).Unix(), Tail: []string{"b"}}, c.now)
	k := &sink{}
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = s.Step(context.Background(), log, k)
	}
	require.ErrorContains(t, err, "badger: read failed")
	asked := idx.asked
	drain(t, s, log, k)
	assert.Greater(t, idx.asked, asked, "asked again")
	assert.Empty(t, k.got(), "nothing sent twice")
}

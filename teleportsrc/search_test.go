package teleportsrc

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	apiproto "github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/cursor"
)

// memClient is an in-memory audit log with the paging semantics of
// Teleport's backends: ascending by time, inclusive bounds, a page key that
// continues after the last event of a page.
type memClient struct {
	events []*auditlogpb.EventUnstructured
	// secondGranularity compares bounds by whole seconds, like DynamoDB's
	// CreatedAt, so a query returns events before its precise start.
	secondGranularity bool
	// maxPage caps a page below the requested limit (the 1 MiB cap).
	maxPage int
	fail    []error
	queries []query
}

type query struct {
	from, to time.Time
	types    []string
	limit    int
	key      string
}

func ev(id, typ string, t time.Time) *auditlogpb.EventUnstructured {
	body, _ := structpb.NewStruct(map[string]any{"event": typ, "uid": id, "time": t.Format(time.RFC3339Nano)})
	e := &auditlogpb.EventUnstructured{}
	e.SetId(id)
	e.SetType(typ)
	e.SetTime(timestamppb.New(t))
	e.SetUnstructured(body)
	return e
}

func (m *memClient) add(evs ...*auditlogpb.EventUnstructured) {
	m.events = append(m.events, evs...)
	sort.SliceStable(m.events, func(i, j int) bool {
		return m.events[i].GetTime().AsTime().Before(m.events[j].GetTime().AsTime())
	})
}

func (m *memClient) Ping(context.Context) (apiproto.PingResponse, error) {
	return apiproto.PingResponse{ClusterName: "mem"}, nil
}

func (m *memClient) Close() error { return nil }

// SearchEvents answers like the Auth Service, through the wire format.
func (m *memClient) SearchEvents(_ context.Context, req *auditlogpb.GetUnstructuredEventsRequest) (Page, error) {
	evs, key, err := m.search(req.GetStartDate().AsTime(), req.GetEndDate().AsTime(), req.GetEventTypes(), int(req.GetLimit()), types.EventOrder(req.GetOrder()), req.GetStartKey())
	if err != nil {
		return Page{}, err
	}
	resp := &auditlogpb.EventsUnstructured{}
	resp.SetItems(evs)
	resp.SetLastKey(key)
	raw, err := proto.Marshal(resp)
	if err != nil {
		return Page{}, err
	}
	return ParsePage(raw)
}

func (m *memClient) search(from, to time.Time, eventTypes []string, limit int, order types.EventOrder, key string) ([]*auditlogpb.EventUnstructured, string, error) {
	m.queries = append(m.queries, query{from, to, eventTypes, limit, key})
	if len(m.fail) > 0 {
		err := m.fail[0]
		m.fail = m.fail[1:]
		if err != nil {
			return nil, "", err
		}
	}
	if order != types.EventOrderAscending {
		return nil, "", errors.New("descending")
	}
	want := set(eventTypes)
	in := func(e *auditlogpb.EventUnstructured) bool {
		t := e.GetTime().AsTime()
		if m.secondGranularity {
			return t.Unix() >= from.Unix() && t.Unix() <= to.Unix()
		}
		return !t.Before(from) && !t.After(to)
	}
	started := key == ""
	var page []*auditlogpb.EventUnstructured
	for i, e := range m.events {
		if !in(e) || (len(want) > 0 && !want[e.GetType()]) {
			continue
		}
		if !started {
			started = e.GetId() == key
			continue
		}
		page = append(page, e)
		cap := limit
		if m.maxPage > 0 && m.maxPage < cap {
			cap = m.maxPage
		}
		if len(page) == cap {
			// More to come only if another matching event follows.
			for _, rest := range m.events[i+1:] {
				if in(rest) && (len(want) == 0 || want[rest.GetType()]) {
					return page, e.GetId(), nil
				}
			}
			return page, "", nil
		}
	}
	return page, "", nil
}

type sink struct {
	ids   []string
	marks []cursor.Mark
}

func (s *sink) Event(_ context.Context, e *Event, after cursor.Mark) error {
	s.ids = append(s.ids, e.ID)
	s.marks = append(s.marks, after)
	return nil
}

func (s *sink) Progress(_ context.Context, at cursor.Mark) error {
	s.marks = append(s.marks, at)
	return nil
}

func (s *sink) last() SearchPosition {
	return s.marks[len(s.marks)-1].(SearchPosition)
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var t0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

// drain steps until idle (caught up) or n steps.
func drain(t *testing.T, s *Search, c Client, k *sink) {
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

func cfg() SearchConfig { return SearchConfig{Window: 24 * time.Hour, PageSize: 100} }

func TestSearchPagesInOrderExactlyOnce(t *testing.T) {
	m := &memClient{}
	for i := 0; i < 1234; i++ {
		m.add(ev(fmt.Sprint("e", i), "user.login", t0.Add(time.Duration(i)*time.Second)))
	}
	clk := &clock{t0.Add(2 * time.Hour)}
	s := NewSearch(cfg(), SearchPosition{From: t0.Unix()}, clk.now)
	k := &sink{}
	drain(t, s, m, k)
	assert.Equal(t, ids("e", 1234), k.ids)
	assert.Len(t, m.queries, 13, "one query per page, no re-reading")
	for _, q := range m.queries {
		assert.Equal(t, 100, q.limit)
	}
}

func TestSearchShortPagesWithKeyAreNotTheEnd(t *testing.T) {
	m := &memClient{maxPage: 7}
	for i := 0; i < 50; i++ {
		m.add(ev(fmt.Sprint("e", i), "exec", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	s := NewSearch(SearchConfig{Window: time.Hour, PageSize: 500}, SearchPosition{From: t0.Unix()}, (&clock{t0.Add(time.Minute)}).now)
	k := &sink{}
	drain(t, s, m, k)
	assert.Equal(t, ids("e", 50), k.ids)
}

func TestSearchWindowsAndEmptyDays(t *testing.T) {
	m := &memClient{}
	// Day 0 and day 4 hold events, days 1-3 are empty; one event sits on a
	// window boundary exactly.
	m.add(ev("a", "x", t0.Add(time.Hour)), ev("b", "x", t0.Add(24*time.Hour)), ev("c", "x", t0.Add(4*24*time.Hour+time.Minute)))
	clk := &clock{t0.Add(5 * 24 * time.Hour)}
	s := NewSearch(cfg(), SearchPosition{From: t0.Unix()}, clk.now)
	k := &sink{}
	drain(t, s, m, k)
	assert.Equal(t, []string{"a", "b", "c"}, k.ids, "the boundary event once")
	for _, q := range m.queries {
		assert.LessOrEqual(t, q.to.Sub(q.from), 24*time.Hour, "queries span at most one window")
		assert.Empty(t, q.key, "one page per window here")
	}
	assert.Len(t, m.queries, 5, "five windows up to now; the last is the open one")
	assert.Equal(t, t0.Add(4*24*time.Hour+time.Minute).Unix(), s.Position().From)
}

func TestSearchEmptyWindowsMoveThePosition(t *testing.T) {
	m := &memClient{}
	clk := &clock{t0.Add(3*24*time.Hour + time.Hour)}
	s := NewSearch(cfg(), SearchPosition{From: t0.Unix()}, clk.now)
	k := &sink{}
	drain(t, s, m, k)
	require.NotEmpty(t, k.marks)
	assert.Equal(t, t0.Add(3*24*time.Hour).Unix(), k.last().From, "the last closed window's end is saved")
}

func TestSearchPollRereadsOnlyTheLastSecond(t *testing.T) {
	m := &memClient{}
	for i := 0; i < 300; i++ {
		m.add(ev(fmt.Sprint("e", i), "x", t0.Add(time.Duration(i)*100*time.Millisecond))) // 10 per second
	}
	clk := &clock{t0.Add(time.Minute)}
	s := NewSearch(cfg(), SearchPosition{From: t0.Unix()}, clk.now)
	k := &sink{}
	drain(t, s, m, k)
	require.Len(t, k.ids, 300)

	// Idle polls: one query each, starting at the last second delivered.
	before := len(m.queries)
	for i := 0; i < 3; i++ {
		clk.t = clk.t.Add(time.Second)
		idle, err := s.Step(context.Background(), m, k)
		require.NoError(t, err)
		assert.True(t, idle)
	}
	assert.Len(t, m.queries, before+3)
	q := m.queries[len(m.queries)-1]
	assert.Equal(t, t0.Add(29*time.Second), q.from, "fresh query from the last delivered second")
	assert.Equal(t, int64(30), s.Stats.Duplicates, "only that second's 10 events are re-read per poll")

	// New events arrive: only they are delivered.
	m.add(ev("n1", "x", t0.Add(29*time.Second+950*time.Millisecond)), ev("n2", "x", t0.Add(61*time.Second)))
	clk.t = t0.Add(62 * time.Second)
	drain(t, s, m, k)
	assert.Equal(t, []string{"n1", "n2"}, k.ids[300:])
}

func TestSearchSecondGranularityBackend(t *testing.T) {
	m := &memClient{secondGranularity: true}
	for i := 0; i < 100; i++ {
		m.add(ev(fmt.Sprint("e", i), "x", t0.Add(time.Duration(i)*250*time.Millisecond)))
	}
	clk := &clock{t0.Add(3 * time.Minute)}
	s := NewSearch(SearchConfig{Window: 10 * time.Second, PageSize: 7}, SearchPosition{From: t0.Unix()}, clk.now)
	k := &sink{}
	drain(t, s, m, k)
	assert.Equal(t, ids("e", 100), k.ids, "window ends re-return a whole second; ids drop the repeats")
	assert.Positive(t, s.Stats.Duplicates)
}

func TestSearchResumesFromAnyPositionWithoutLossOrRepeat(t *testing.T) {
	m := &memClient{secondGranularity: true}
	for i := 0; i < 200; i++ {
		m.add(ev(fmt.Sprint("e", i), "x", t0.Add(time.Duration(i)*300*time.Millisecond)))
	}
	clk := &clock{t0.Add(time.Hour)}
	full := &sink{}
	drain(t, NewSearch(SearchConfig{Window: 7 * time.Second, PageSize: 9}, SearchPosition{From: t0.Unix()}, clk.now), m, full)
	require.Equal(t, ids("e", 200), full.ids)

	// A restart after any event (the committed position is the one after
	// it) continues with exactly the next event.
	for cut := 0; cut < 200; cut += 13 {
		pos := full.marks[indexOfEvent(full, cut)].(SearchPosition)
		stored, err := ParseSearchPosition(pos.Value())
		require.NoError(t, err)
		k := &sink{}
		drain(t, NewSearch(SearchConfig{Window: 7 * time.Second, PageSize: 9}, stored, clk.now), m, k)
		assert.Equal(t, full.ids[cut+1:], k.ids, "resume after event %d", cut)
	}
}

// indexOfEvent maps the n-th delivered event to its index in marks.
func indexOfEvent(k *sink, n int) int {
	seen := -1
	for i, m := range k.marks {
		p := m.(SearchPosition)
		if len(p.Tail) > 0 && p.Tail[len(p.Tail)-1] == k.ids[n] {
			seen = i
		}
	}
	return seen
}

func TestSearchFilters(t *testing.T) {
	m := &memClient{}
	m.add(ev("1", "user.login", t0.Add(time.Second)), ev("2", "cert.create", t0.Add(2*time.Second)),
		ev("3", "session.start", t0.Add(3*time.Second)), ev("4", "user.login", t0.Add(4*time.Second)))
	clk := &clock{t0.Add(time.Hour)}

	k := &sink{}
	drain(t, NewSearch(SearchConfig{Window: time.Hour, PageSize: 10, Types: []string{"user.login", "cert.create"}, Skip: []string{"cert.create"}},
		SearchPosition{From: t0.Unix()}, clk.now), m, k)
	assert.Equal(t, []string{"1", "4"}, k.ids)
	assert.Equal(t, []string{"user.login", "cert.create"}, m.queries[0].types, "types go to the server")
	assert.Equal(t, t0.Add(4*time.Second).Unix(), k.last().From)

	k = &sink{}
	drain(t, NewSearch(SearchConfig{Window: time.Hour, PageSize: 10, Skip: []string{"user.login"}},
		SearchPosition{From: t0.Unix()}, clk.now), m, k)
	assert.Equal(t, []string{"2", "3"}, k.ids)
	assert.Equal(t, t0.Add(4*time.Second).Unix(), k.last().From, "skipped events still move the position")
}

func TestSearchRetriesTheSamePageAfterAnError(t *testing.T) {
	m := &memClient{}
	for i := 0; i < 30; i++ {
		m.add(ev(fmt.Sprint("e", i), "x", t0.Add(time.Duration(i)*time.Second)))
	}
	clk := &clock{t0.Add(time.Hour)}
	s := NewSearch(SearchConfig{Window: time.Hour, PageSize: 10}, SearchPosition{From: t0.Unix()}, clk.now)
	k := &sink{}
	_, err := s.Step(context.Background(), m, k)
	require.NoError(t, err)
	m.fail = []error{errors.New("unavailable")}
	_, err = s.Step(context.Background(), m, k)
	require.Error(t, err)
	drain(t, s, m, k)
	assert.Equal(t, ids("e", 30), k.ids)
	assert.Equal(t, m.queries[1].key, m.queries[2].key, "the failed page is asked again")
}

func TestSearchStartInTheFutureWaits(t *testing.T) {
	m := &memClient{}
	clk := &clock{t0}
	s := NewSearch(cfg(), SearchPosition{From: t0.Add(time.Hour).Unix()}, clk.now)
	idle, err := s.Step(context.Background(), m, &sink{})
	require.NoError(t, err)
	assert.True(t, idle)
	assert.Empty(t, m.queries)
}

func TestSearchPositionSnapshotsAreStable(t *testing.T) {
	m := &memClient{}
	for i := 0; i < 5; i++ {
		m.add(ev(fmt.Sprint("e", i), "x", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	k := &sink{}
	drain(t, NewSearch(cfg(), SearchPosition{From: t0.Unix()}, (&clock{t0.Add(time.Minute)}).now), m, k)
	for i, mk := range k.marks {
		assert.Len(t, mk.(SearchPosition).Tail, i+1, "an earlier position must not see later ids")
	}
}

func TestParsePageMatchesProtobuf(t *testing.T) {
	want := []*auditlogpb.EventUnstructured{ev("a", "user.login", t0.Add(123456789)), ev("b", "exec", t0.Add(time.Hour))}
	want[1].SetIndex(7)
	resp := &auditlogpb.EventsUnstructured{}
	resp.SetItems(want)
	resp.SetLastKey("next")
	raw, err := proto.Marshal(resp)
	require.NoError(t, err)
	p, err := ParsePage(raw)
	require.NoError(t, err)
	require.Len(t, p.Events, 2)
	assert.Equal(t, "next", p.LastKey)
	for i, w := range want {
		got := p.Events[i]
		assert.Equal(t, w.GetId(), got.ID)
		assert.Equal(t, w.GetType(), got.Type)
		assert.Equal(t, w.GetIndex(), got.Index)
		assert.True(t, w.GetTime().AsTime().Equal(got.Time()))
		body, err := proto.Marshal(w.GetUnstructured())
		require.NoError(t, err)
		assert.Equal(t, body, got.Body)
	}
	_, err = ParsePage([]byte{0x0a, 0x10, 0x01})
	assert.Error(t, err)
}

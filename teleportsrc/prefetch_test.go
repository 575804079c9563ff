package teleportsrc

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/cursor"
)

// pagedLog serves n events, event i at start + i*every, in pages of at most
// the limit, keyed by the index of the next event; it records every query.
type pagedLog struct {
	Client
	start time.Time
	every time.Duration
	n     int
	asked chan query // if set, receives each query as it is asked

	mu      sync.Mutex
	queries []query
}

func (l *pagedLog) SearchEvents(_ context.Context, req *auditlogpb.GetUnstructuredEventsRequest) (Page, error) {
	from, to := req.GetStartDate().AsTime(), req.GetEndDate().AsTime()
	q := query{from: from, to: to, key: req.GetStartKey()}
	l.mu.Lock()
	l.queries = append(l.queries, q)
	l.mu.Unlock()
	if l.asked != nil {
		l.asked <- q
	}
	first := 0
	if q.key != "" {
		if _, err := fmt.Sscan(q.key, &first); err != nil {
			return Page{}, err
		}
	}
	var p Page
	for i := first; i < l.n; i++ {
		t := l.start.Add(time.Duration(i) * l.every)
		if t.Before(from) || t.After(to) {
			continue
		}
		if len(p.Events) == int(req.GetLimit()) {
			p.LastKey = fmt.Sprint(i)
			break
		}
		p.Events = append(p.Events, Event{ID: fmt.Sprint("e", i), Type: "x", Seconds: t.Unix()})
	}
	return p, nil
}

func (l *pagedLog) all() []query {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]query(nil), l.queries...)
}

type idSink struct{ ids []string }

func (s *idSink) Event(_ context.Context, ev *Event, _ cursor.Mark) error {
	s.ids = append(s.ids, ev.ID)
	return nil
}

func (s *idSink) Progress(context.Context, cursor.Mark) error { return nil }

var day0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

func stepUntilIdle(t *testing.T, s *Search, c Client, k Sink) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		idle, err := s.Step(context.Background(), c, k)
		require.NoError(t, err)
		if idle {
			return
		}
	}
	t.Fatal("never caught up")
}

// Windows end at UTC midnight, whatever second the export starts at.
func TestSearchWindowsEndAtMidnight(t *testing.T) {
	start := day0.Add(13*time.Hour + 7*time.Second)
	l := &pagedLog{start: start, every: time.Second, n: 5}
	now := day0.Add(3*24*time.Hour + time.Hour)
	s := NewSearch(SearchConfig{Window: 24 * time.Hour, PageSize: 10}, SearchPosition{From: start.Unix()}, func() time.Time { return now })
	k := &idSink{}
	stepUntilIdle(t, s, l, k)
	assert.Len(t, k.ids, 5)
	var got []string
	for _, q := range l.all() {
		got = append(got, q.from.Format(time.DateTime)+" - "+q.to.Format(time.DateTime))
	}
	assert.Equal(t, []string{
		"2026-05-01 13:00:07 - 2026-05-02 00:00:00",
		"2026-05-02 00:00:00 - 2026-05-03 00:00:00",
		"2026-05-03 00:00:00 - 2026-05-04 00:00:00",
		"2026-05-04 00:00:00 - 2026-05-04 01:00:00", // the open window, up to now
	}, got)
}

// While a page is handed over, the next page of its window and the first
// page of the next closed window are asked already; the reader then uses
// them without asking again, hands over every event once, in order, and
// reads nothing ahead into the open window.
func TestSearchReadsAheadAcrossWindows(t *testing.T) {
	// 13 events 6 hours apart: 5 on the first day (one on its end), 4 on
	// the next two, and one in the open window.
	l := &pagedLog{start: day0, every: 6 * time.Hour, n: 13, asked: make(chan query, 100)}
	now := day0.Add(3*24*time.Hour + time.Hour)
	s := NewSearch(SearchConfig{Window: 24 * time.Hour, PageSize: 3, Concurrency: 2}, SearchPosition{From: day0.Unix()}, func() time.Time { return now })
	k := &idSink{}
	_, err := s.Step(context.Background(), l, k)
	require.NoError(t, err)
	want := []query{
		{from: day0, to: day0.Add(24 * time.Hour)},
		{from: day0, to: day0.Add(24 * time.Hour), key: "3"},
		{from: day0.Add(24 * time.Hour), to: day0.Add(48 * time.Hour)},
	}
	var seen []query
	for len(seen) < len(want) {
		select {
		case q := <-l.asked:
			seen = append(seen, q)
		case <-time.After(10 * time.Second):
			t.Fatalf("asked only %v", seen)
		}
	}
	assert.ElementsMatch(t, want, seen, "after the first page: the second page and the next day's first, before the reader asks")

	stepUntilIdle(t, s, l, k)
	var ids []string
	for i := 0; i < l.n; i++ {
		ids = append(ids, fmt.Sprint("e", i))
	}
	assert.Equal(t, ids, k.ids)
	asked := map[string]int{}
	for _, q := range l.all() {
		asked[fmt.Sprint(q.from.Format(time.DateTime), " - ", q.to.Format(time.DateTime), " key ", q.key)]++
	}
	for q, n := range asked {
		assert.Equal(t, 1, n, "query %s asked once", q)
	}
	assert.Len(t, asked, 7, "two pages of the first day, two of each other closed day, one of the open window: %v", asked)
	assert.Empty(t, s.ahead.pending, "nothing is read ahead into the open window")
}

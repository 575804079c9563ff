// Package memlog is an in-memory Teleport audit log for tests. It answers
// like Teleport's backends: searches ascending by time with inclusive bounds
// and a page key that continues after the last event of a page, bulk export
// by UTC date and immutable chunk, and session recordings by index; all
// through the real wire format.
package memlog

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	apiproto "github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
)

// Log is the audit log. Its zero value is empty and ready.
type Log struct {
	// Granularity truncates the times a search compares (its bounds and the
	// events') to whole multiples, as backends do that keep coarser times:
	// DynamoDB and Firestore keep seconds, Athena milliseconds. So a query
	// returns events before its precise start. 0 compares nanoseconds.
	Granularity time.Duration
	// MaxPage caps a page below the requested limit (the 1 MiB cap).
	MaxPage int
	// MaxEventBytes, if set, is the largest event a search page can carry; a
	// larger one fails the page it would start, with Teleport's message.
	MaxEventBytes int
	// Cluster is what Ping answers; default "mem".
	Cluster string
	// Bulk enables bulk export; without it both bulk calls answer
	// NotImplemented, like self-hosted backends.
	Bulk bool
	// ChunkSize is the most events of one Add and one date in a chunk; default 100.
	ChunkSize int
	// StructuredSessionsOnly makes StreamSession NotImplemented (Teleport 13).
	StructuredSessionsOnly bool
	// DenySessions makes session streams AccessDenied, as for a role
	// without the session rule.
	DenySessions atomic.Bool

	mu       sync.Mutex
	events   []*auditlogpb.EventUnstructured
	chunks   map[string][]chunk // by UTC date
	sessions map[string][]*auditlogpb.EventUnstructured
	fail     []error
	queries  []Query
	calls    map[string]int
}

type chunk struct {
	id     string
	events []*auditlogpb.EventUnstructured
}

// Query is one GetUnstructuredEvents request as the log saw it.
type Query struct {
	From, To time.Time
	Types    []string
	Limit    int
	Key      string
}

// Event builds an audit event with a small JSON body.
func Event(id, typ string, t time.Time) *auditlogpb.EventUnstructured {
	return EventWith(id, typ, t, nil)
}

// EventWith builds an audit event whose body also has the given fields.
func EventWith(id, typ string, t time.Time, fields map[string]any) *auditlogpb.EventUnstructured {
	m := map[string]any{"event": typ, "uid": id, "time": t.Format(time.RFC3339Nano)}
	for k, v := range fields {
		m[k] = v
	}
	body, err := structpb.NewStruct(m)
	if err != nil {
		panic(err) // test input
	}
	e := &auditlogpb.EventUnstructured{}
	e.SetId(id)
	e.SetType(typ)
	e.SetTime(timestamppb.New(t))
	e.SetUnstructured(body)
	if ei, ok := fields["ei"].(float64); ok {
		e.SetIndex(int64(ei))
	}
	return e
}

// Add appends events to the log (kept sorted by time) and, per UTC date,
// as new chunks for bulk export.
func (m *Log) Add(evs ...*auditlogpb.EventUnstructured) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, evs...)
	sort.SliceStable(m.events, func(i, j int) bool {
		return m.events[i].GetTime().AsTime().Before(m.events[j].GetTime().AsTime())
	})
	if m.chunks == nil {
		m.chunks = map[string][]chunk{}
	}
	size := m.ChunkSize
	if size <= 0 {
		size = 100
	}
	byDate := map[string][]*auditlogpb.EventUnstructured{}
	var dates []string
	for _, e := range evs {
		d := e.GetTime().AsTime().UTC().Format(time.DateOnly)
		if byDate[d] == nil {
			dates = append(dates, d)
		}
		byDate[d] = append(byDate[d], e)
	}
	for _, d := range dates {
		for list := byDate[d]; len(list) > 0; {
			n := min(size, len(list))
			m.chunks[d] = append(m.chunks[d], chunk{id: fmt.Sprintf("%s.%04d", d, len(m.chunks[d])), events: list[:n]})
			list = list[n:]
		}
	}
}

// AddSession stores a recording.
func (m *Log) AddSession(sid string, evs ...*auditlogpb.EventUnstructured) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions == nil {
		m.sessions = map[string][]*auditlogpb.EventUnstructured{}
	}
	m.sessions[sid] = append(m.sessions[sid], evs...)
}

// FailNext makes the next searches fail with these errors (nil: succeed).
func (m *Log) FailNext(errs ...error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = append(m.fail, errs...)
}

// Queries returns the searches so far.
func (m *Log) Queries() []Query {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Query(nil), m.queries...)
}

// Calls counts calls by method name ("ExportChunks", "StreamSession", ...).
func (m *Log) Calls(method string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[method]
}

func (m *Log) count(method string) {
	if m.calls == nil {
		m.calls = map[string]int{}
	}
	m.calls[method]++
}

// Ping implements teleportsrc.Client.
func (m *Log) Ping(context.Context) (apiproto.PingResponse, error) {
	name := m.Cluster
	if name == "" {
		name = "mem"
	}
	return apiproto.PingResponse{ClusterName: name, ServerVersion: "19.0.0"}, nil
}

// Close implements teleportsrc.Client.
func (m *Log) Close() error { return nil }

// SearchEvents implements teleportsrc.Client through the wire format.
func (m *Log) SearchEvents(_ context.Context, req *auditlogpb.GetUnstructuredEventsRequest) (teleportsrc.Page, error) {
	evs, key, err := m.search(req.GetStartDate().AsTime(), req.GetEndDate().AsTime(), req.GetEventTypes(), int(req.GetLimit()), types.EventOrder(req.GetOrder()), req.GetStartKey())
	if err != nil {
		return teleportsrc.Page{}, err
	}
	resp := &auditlogpb.EventsUnstructured{}
	resp.SetItems(evs)
	resp.SetLastKey(key)
	return parse(resp, teleportsrc.ParsePage)
}

func parse[T any](m proto.Message, fn func([]byte) (T, error)) (T, error) {
	raw, err := proto.Marshal(m)
	if err != nil {
		var zero T
		return zero, err
	}
	return fn(raw)
}

func (m *Log) search(from, to time.Time, eventTypes []string, limit int, order types.EventOrder, key string) ([]*auditlogpb.EventUnstructured, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("SearchEvents")
	m.queries = append(m.queries, Query{from, to, eventTypes, limit, key})
	if len(m.fail) > 0 {
		err := m.fail[0]
		m.fail = m.fail[1:]
		if err != nil {
			return nil, "", err
		}
	}
	want := map[string]bool{}
	for _, t := range eventTypes {
		want[t] = true
	}
	in := func(e *auditlogpb.EventUnstructured) bool {
		t := e.GetTime().AsTime()
		if g := m.Granularity; g > 0 {
			t, from, to = t.Truncate(g), from.Truncate(g), to.Truncate(g)
		}
		if t.Before(from) || t.After(to) {
			return false
		}
		return len(want) == 0 || want[e.GetType()]
	}
	list := m.events
	if order != types.EventOrderAscending {
		list = make([]*auditlogpb.EventUnstructured, len(m.events))
		for i, e := range m.events {
			list[len(list)-1-i] = e
		}
	}
	started := key == ""
	page := []*auditlogpb.EventUnstructured{}
	for i, e := range list {
		if !in(e) {
			continue
		}
		if !started {
			started = e.GetId() == key
			continue
		}
		if size := proto.Size(e.GetUnstructured()); m.MaxEventBytes > 0 && size > m.MaxEventBytes {
			if len(page) == 0 {
				// Teleport's lib/events wording.
				return nil, "", fmt.Errorf("%s event %s is %d B and cannot be returned because it exceeds the maximum response size of %d B",
					e.GetType(), e.GetId(), size, m.MaxEventBytes)
			}
			return page, page[len(page)-1].GetId(), nil
		}
		page = append(page, e)
		size := limit
		if m.MaxPage > 0 && m.MaxPage < size {
			size = m.MaxPage
		}
		if len(page) == size {
			for _, rest := range list[i+1:] {
				if in(rest) {
					return page, e.GetId(), nil
				}
			}
			return page, "", nil
		}
	}
	return page, "", nil
}

// ExportChunks implements teleportsrc.Client.
func (m *Log) ExportChunks(_ context.Context, date time.Time) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count("ExportChunks")
	if !m.Bulk {
		return nil, trace.NotImplemented("memlog does not implement GetEventExportChunks")
	}
	var ids []string
	for _, c := range m.chunks[date.UTC().Format(time.DateOnly)] {
		ids = append(ids, c.id)
	}
	return ids, nil
}

// ExportEvents implements teleportsrc.Client; a cursor is the index of the
// next event in the chunk.
func (m *Log) ExportEvents(ctx context.Context, date time.Time, id, cursor string, fn func(*teleportsrc.Event, string) error) error {
	m.mu.Lock()
	m.count("ExportEvents")
	if !m.Bulk {
		m.mu.Unlock()
		return trace.NotImplemented("memlog does not implement ExportUnstructuredEvents")
	}
	var events []*auditlogpb.EventUnstructured
	found := false
	for _, c := range m.chunks[date.UTC().Format(time.DateOnly)] {
		if c.id == id {
			events, found = c.events, true
		}
	}
	m.mu.Unlock()
	if !found {
		return trace.NotFound("chunk %q not found", id)
	}
	start := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil {
			return trace.BadParameter("bad cursor %q", cursor)
		}
		start = n
	}
	for i := start; i < len(events); i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := &auditlogpb.ExportEventUnstructured{}
		msg.SetEvent(events[i])
		msg.SetCursor(strconv.Itoa(i + 1))
		raw, err := proto.Marshal(msg)
		if err != nil {
			return err
		}
		ev, next, err := teleportsrc.ParseExportEvent(raw)
		if err != nil {
			return err
		}
		if err := fn(&ev, next); err != nil {
			return err
		}
	}
	return nil
}

// StreamSession implements teleportsrc.Client.
func (m *Log) StreamSession(ctx context.Context, sid string, start int64, fn func(*teleportsrc.Event) error) error {
	m.mu.Lock()
	m.count("StreamSession")
	off := m.StructuredSessionsOnly
	m.mu.Unlock()
	if off {
		return trace.NotImplemented("unknown method StreamUnstructuredSessionEvents")
	}
	return m.stream(ctx, sid, start, fn)
}

// StreamSessionStructured implements teleportsrc.Client.
func (m *Log) StreamSessionStructured(ctx context.Context, sid string, start int64, fn func(*teleportsrc.Event) error) error {
	m.mu.Lock()
	m.count("StreamSessionStructured")
	m.mu.Unlock()
	return m.stream(ctx, sid, start, fn)
}

func (m *Log) stream(ctx context.Context, sid string, start int64, fn func(*teleportsrc.Event) error) error {
	m.mu.Lock()
	rec, ok := m.sessions[sid]
	m.mu.Unlock()
	if m.DenySessions.Load() {
		return trace.AccessDenied("access denied to perform action \"list\" on \"session\"")
	}
	if !ok {
		return trace.NotFound("a recording for session %v was not found", sid)
	}
	for _, e := range rec {
		if e.GetIndex() < start {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ev, err := parse(e, teleportsrc.ParseEvent)
		if err != nil {
			return err
		}
		if err := fn(&ev); err != nil {
			return err
		}
	}
	return nil
}

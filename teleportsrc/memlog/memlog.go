// Package memlog is an in-memory Teleport audit log for tests: it answers
// GetUnstructuredEvents like Teleport's backends do (ascending by time,
// inclusive bounds, a page key that continues after the last event of a
// page), through the real wire format.
package memlog

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	apiproto "github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
)

// Log is the audit log. Its zero value is empty and ready.
type Log struct {
	// SecondGranularity compares bounds by whole seconds, like DynamoDB's
	// CreatedAt, so a query returns events before its precise start.
	SecondGranularity bool
	// MaxPage caps a page below the requested limit (the 1 MiB cap).
	MaxPage int
	// Cluster is what Ping answers; default "mem".
	Cluster string

	mu      sync.Mutex
	events  []*auditlogpb.EventUnstructured
	fail    []error
	queries []Query
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
	body, _ := structpb.NewStruct(map[string]any{"event": typ, "uid": id, "time": t.Format(time.RFC3339Nano)})
	e := &auditlogpb.EventUnstructured{}
	e.SetId(id)
	e.SetType(typ)
	e.SetTime(timestamppb.New(t))
	e.SetUnstructured(body)
	return e
}

// Add appends events, kept sorted by time.
func (m *Log) Add(evs ...*auditlogpb.EventUnstructured) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, evs...)
	sort.SliceStable(m.events, func(i, j int) bool {
		return m.events[i].GetTime().AsTime().Before(m.events[j].GetTime().AsTime())
	})
}

// FailNext makes the next queries fail with these errors (nil: succeed).
func (m *Log) FailNext(errs ...error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = append(m.fail, errs...)
}

// Queries returns the queries so far.
func (m *Log) Queries() []Query {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Query(nil), m.queries...)
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
	raw, err := proto.Marshal(resp)
	if err != nil {
		return teleportsrc.Page{}, err
	}
	return teleportsrc.ParsePage(raw)
}

func (m *Log) search(from, to time.Time, eventTypes []string, limit int, order types.EventOrder, key string) ([]*auditlogpb.EventUnstructured, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queries = append(m.queries, Query{from, to, eventTypes, limit, key})
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
	want := map[string]bool{}
	for _, t := range eventTypes {
		want[t] = true
	}
	in := func(e *auditlogpb.EventUnstructured) bool {
		t := e.GetTime().AsTime()
		if m.SecondGranularity {
			if t.Unix() < from.Unix() || t.Unix() > to.Unix() {
				return false
			}
		} else if t.Before(from) || t.After(to) {
			return false
		}
		return len(want) == 0 || want[e.GetType()]
	}
	started := key == ""
	page := []*auditlogpb.EventUnstructured{}
	for i, e := range m.events {
		if !in(e) {
			continue
		}
		if !started {
			started = e.GetId() == key
			continue
		}
		page = append(page, e)
		size := limit
		if m.MaxPage > 0 && m.MaxPage < size {
			size = m.MaxPage
		}
		if len(page) == size {
			for _, rest := range m.events[i+1:] {
				if in(rest) {
					return page, e.GetId(), nil
				}
			}
			return page, "", nil
		}
	}
	return page, "", nil
}

package teleportfake

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	apievents "github.com/gravitational/teleport/api/types/events"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// entry is one stored event with its precomputed wire forms.
//
// item is the event as it appears inside a response message: the tag of
// field 1 (items / event), a length prefix and the protobuf encoding of the
// auditlogpb.EventUnstructured that events.ToUnstructured produces. oneOf is
// the same for the structured events.OneOf. Responses carry these bytes as
// unknown fields, which protobuf emits verbatim, so serving a page costs a
// memcpy instead of a marshal. Entries hold no typed event, which keeps the
// store cheap for the garbage collector.
type entry struct {
	id     string // uid, or the SHA-256 that ToUnstructured computes when the uid is empty
	typ    string
	tn     int64 // event time, Unix nanoseconds
	index  int64 // "ei"
	item   []byte
	off    int // start of the EventUnstructured encoding inside item
	oneOf  []byte
	oneOff int // start of the OneOf encoding inside oneOf
}

// size is the encoded size of the event (its EventUnstructured message).
func (e *entry) size() int { return len(e.item) - e.off }

// body is the EventUnstructured encoding without the field tag.
func (e *entry) body() []byte { return e.item[e.off:] }

func newEntry(ev apievents.AuditEvent) (*entry, error) {
	if ev == nil {
		return nil, fmt.Errorf("nil event")
	}
	body, id, err := encodeUnstructured(ev)
	if err != nil {
		return nil, fmt.Errorf("converting %s event %q to unstructured: %w", ev.GetType(), ev.GetID(), err)
	}
	oneOf, err := encodeOneOf(ev)
	if err != nil {
		return nil, fmt.Errorf("converting %s event %q to OneOf: %w", ev.GetType(), ev.GetID(), err)
	}
	e := &entry{
		id:    id,
		typ:   ev.GetType(),
		tn:    toNanos(ev.GetTime()),
		index: ev.GetIndex(),
	}
	e.item, e.off = withTag(body)
	e.oneOf, e.oneOff = withTag(oneOf)
	return e, nil
}

var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

// toNanos converts t to Unix nanoseconds, clamping times outside the int64
// range (such as the zero time.Time of an unset date).
func toNanos(t time.Time) int64 {
	if !t.After(minNanoTime) {
		return math.MinInt64
	}
	if !t.Before(maxNanoTime) {
		return math.MaxInt64
	}
	return t.UnixNano()
}

// chunk is one bulk-export chunk: an immutable run of events of one UTC date.
type chunk struct {
	id      string
	entries []*entry
}

// dateKey is the UTC date of a time in the form the chunk index uses.
func dateKey(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// insertSorted merges batch (sorted by time) into events (sorted by time).
// Events already stored come first among equal times, so the order is stable.
func insertSorted(events, batch []*entry) []*entry {
	if len(events) == 0 || batch[0].tn >= events[len(events)-1].tn {
		return append(events, batch...)
	}
	merged := make([]*entry, 0, len(events)+len(batch))
	i, j := 0, 0
	for i < len(events) && j < len(batch) {
		if batch[j].tn < events[i].tn {
			merged = append(merged, batch[j])
			j++
		} else {
			merged = append(merged, events[i])
			i++
		}
	}
	merged = append(merged, events[i:]...)
	return append(merged, batch[j:]...)
}

// lowerBound is the first position with time >= tn.
func lowerBound(events []*entry, tn int64) int {
	return sort.Search(len(events), func(i int) bool { return events[i].tn >= tn })
}

// upperBound is the first position with time > tn.
func upperBound(events []*entry, tn int64) int {
	return sort.Search(len(events), func(i int) bool { return events[i].tn > tn })
}

// position finds e in events (binary search on its time, then a scan over
// the events with the same time).
func position(events []*entry, e *entry) int {
	for i := lowerBound(events, e.tn); i < len(events) && events[i].tn == e.tn; i++ {
		if events[i] == e {
			return i
		}
	}
	return -1
}

// searchRequest is the common form of GetEvents and GetUnstructuredEvents.
type searchRequest struct {
	start, end int64 // inclusive, Unix nanoseconds
	types      []string
	limit      int32
	startKey   string
	order      int32 // wire value: 0 = ascending, 1 = descending (see types.EventOrder)
}

// search returns one page of the global log. The page key is the id of the
// last returned event, and it is "" only when the result set is exhausted.
func (s *Server) search(req searchRequest) ([]*entry, string, error) {
	limit := int(req.limit)
	if limit <= 0 {
		limit = defaultSearchLimit
	}
	if limit > s.cfg.MaxLimit {
		return nil, "", status.Errorf(codes.InvalidArgument, "limit %d exceeds max iteration limit %d", limit, s.cfg.MaxLimit)
	}
	var desc bool
	switch req.order {
	case 0:
	case 1:
		desc = true
	default:
		return nil, "", status.Errorf(codes.InvalidArgument, "unsupported order %d", req.order)
	}
	if req.end < req.start {
		return nil, "", nil
	}
	match := typeMatcher(req.types)
	inRange := func(e *entry) bool { return e.tn >= req.start && e.tn <= req.end }

	s.mu.RLock()
	defer s.mu.RUnlock()
	events := s.events

	var pos int
	if req.startKey != "" {
		e, ok := s.byID[req.startKey]
		if !ok || !inRange(e) || !match(e.typ) {
			// Like Teleport's file log: a key outside the result set yields nothing.
			return nil, "", nil
		}
		pos = position(events, e)
		if desc {
			pos--
		} else {
			pos++
		}
	} else if desc {
		pos = upperBound(events, req.end) - 1
	} else {
		pos = lowerBound(events, req.start)
	}

	step := 1
	if desc {
		step = -1
	}
	page := make([]*entry, 0, min(limit, 1024))
	total, more := 0, false
	for i := pos; i >= 0 && i < len(events); i += step {
		e := events[i]
		if !inRange(e) {
			break
		}
		if !match(e.typ) {
			continue
		}
		if len(page) == limit {
			more = true
			break
		}
		if total+e.size() >= s.cfg.MaxPageBytes {
			if len(page) == 0 {
				// Teleport's wording (lib/events), sent as trace.Errorf: code Unknown.
				return nil, "", status.Errorf(codes.Unknown,
					"%s event %s is %s and cannot be returned because it exceeds the maximum response size of %s",
					e.typ, e.id, ibytes(e.size()), ibytes(s.cfg.MaxPageBytes))
			}
			more = true
			break
		}
		page = append(page, e)
		total += e.size()
	}
	if !more {
		return page, "", nil
	}
	return page, page[len(page)-1].id, nil
}

func typeMatcher(types []string) func(string) bool {
	switch len(types) {
	case 0:
		return func(string) bool { return true }
	case 1:
		t := types[0]
		return func(typ string) bool { return typ == t }
	}
	set := make(map[string]struct{}, len(types))
	for _, t := range types {
		set[t] = struct{}{}
	}
	return func(typ string) bool {
		_, ok := set[typ]
		return ok
	}
}

// sessionEvents returns the recording of sessionID after startIndex
// (startIndex 0 = the whole recording).
func (s *Server) sessionEvents(sessionID string, startIndex int32) ([]*entry, error) {
	s.mu.RLock()
	rec, ok := s.sessions[sessionID]
	s.mu.RUnlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "a recording for session %q was not found", sessionID)
	}
	// Like Teleport's AuditLog.StreamSessionEvents: events whose index is at
	// least startIndex.
	for i, e := range rec {
		if e.index >= int64(startIndex) {
			return rec[i:], nil
		}
	}
	return nil, nil
}

// ibytes formats a size like go-humanize's IBytes, which Teleport uses.
func ibytes(n int) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB"} {
		if f < 1024 {
			break
		}
		f, unit = f/1024, u
	}
	return fmt.Sprintf("%.1f %s", f, unit)
}

// chunkIDs lists the export chunks of the UTC date of t.
func (s *Server) chunkIDs(t time.Time) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	chunks := s.chunks[dateKey(t)]
	ids := make([]string, len(chunks))
	for i, c := range chunks {
		ids[i] = c.id
	}
	return ids
}

const cursorPrefix = "c:"

// chunkEvents returns the events of one chunk after the cursor and the
// position (inside the chunk) of the first of them.
func (s *Server) chunkEvents(t time.Time, chunkID, cursor string) ([]*entry, int, error) {
	first := 0
	if cursor != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(cursor, cursorPrefix))
		if !strings.HasPrefix(cursor, cursorPrefix) || err != nil || n < 0 {
			return nil, 0, status.Errorf(codes.InvalidArgument, "malformed export cursor %q", cursor)
		}
		first = n + 1
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.chunks[dateKey(t)] {
		if c.id == chunkID {
			if first > len(c.entries) {
				return nil, 0, status.Errorf(codes.InvalidArgument, "export cursor %q is past the end of chunk %q", cursor, chunkID)
			}
			return c.entries[first:], first, nil
		}
	}
	return nil, 0, status.Errorf(codes.NotFound, "export chunk %q not found for date %s", chunkID, dateKey(t))
}

// unstructured wraps a stored event into an EventUnstructured whose wire
// form is the precomputed encoding.
func (e *entry) unstructured() *auditlogpb.EventUnstructured {
	m := &auditlogpb.EventUnstructured{}
	m.ProtoReflect().SetUnknown(e.body())
	return m
}

// structured wraps a stored event into an events.OneOf whose wire form is
// the precomputed encoding.
func (e *entry) structured() *apievents.OneOf {
	return &apievents.OneOf{XXX_unrecognized: e.oneOf[e.oneOff:]}
}

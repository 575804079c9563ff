package teleportsrc

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/cursor"
)

// Sink receives what the readers produce, in order. Both calls may block
// (bounded queue) and return ctx.Err() when the input stops.
type Sink interface {
	// Event hands over one event and the position just after it.
	Event(ctx context.Context, ev *Event, after cursor.Mark) error
	// Progress records a position reached without an event to hand over
	// (a filtered event, an empty time window).
	Progress(ctx context.Context, at cursor.Mark) error
}

// SearchKey is the cursor key of the search reader.
const SearchKey = "search"

// SearchPosition is where the search reader resumes: every event before
// second From has been handed over, and so have the events of second From
// whose ids are in Tail. A fresh query from From therefore re-reads only the
// events of one second, and skips those by id. Page keys are never stored:
// they are opaque, backend-specific and may not survive a restart.
type SearchPosition struct {
	From int64    `json:"from"`
	Tail []string `json:"tail,omitempty"`
}

// Key implements cursor.Mark.
func (p SearchPosition) Key() string { return SearchKey }

// Value implements cursor.Mark.
func (p SearchPosition) Value() []byte {
	b, _ := json.Marshal(p) // a struct of an int and strings cannot fail
	return b
}

// ParseSearchPosition reads a stored position.
func ParseSearchPosition(b []byte) (SearchPosition, error) {
	var p SearchPosition
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("stored search position %q is corrupt: %w", b, err)
	}
	return p, nil
}

// FromTime is the position's second as a time.
func (p SearchPosition) FromTime() time.Time { return time.Unix(p.From, 0).UTC() }

// SearchConfig tunes the search reader.
type SearchConfig struct {
	Window   time.Duration
	PageSize int
	Types    []string
	Skip     []string
}

// Search reads the audit log in ascending time order through
// SearchUnstructuredEvents, in windows of at most Window, following the
// server's page keys. It is not safe for concurrent use.
type Search struct {
	cfg   SearchConfig
	types map[string]bool
	skip  map[string]bool
	now   func() time.Time

	pos  SearchPosition
	seen map[string]bool // Tail as a set

	// the query in progress
	key      string
	from, to time.Time
	open     bool // to is "now": the window is still filling

	Stats SearchStats
}

// SearchStats counts what the reader did.
type SearchStats struct {
	Queries    int64
	Events     int64 // handed to the sink
	Skipped    int64 // filtered by type
	Duplicates int64 // re-read and dropped by id
}

// NewSearch resumes from pos.
func NewSearch(cfg SearchConfig, pos SearchPosition, now func() time.Time) *Search {
	s := &Search{cfg: cfg, now: now, pos: pos, seen: map[string]bool{}, types: set(cfg.Types), skip: set(cfg.Skip)}
	for _, id := range pos.Tail {
		s.seen[id] = true
	}
	return s
}

// Position is where the reader stands (after everything it handed over).
func (s *Search) Position() SearchPosition { return s.pos }

// Step runs one page query and hands its events to the sink. idle is true
// when the reader has caught up with now: the caller waits a poll interval
// before the next Step. On error the same page is asked again next time.
func (s *Search) Step(ctx context.Context, c Client, sink Sink) (idle bool, err error) {
	if s.key == "" {
		now := s.now().UTC()
		s.from = s.pos.FromTime()
		s.to = s.from.Add(s.cfg.Window)
		s.open = !s.to.Before(now)
		if s.open {
			s.to = now
		}
		if s.to.Before(s.from) {
			return true, nil // start_time is in the future
		}
	}
	s.Stats.Queries++
	page, err := c.SearchEvents(ctx, s.request())
	if err != nil {
		return false, err
	}
	for i := range page.Events {
		if err := s.deliver(ctx, &page.Events[i], sink); err != nil {
			return false, err
		}
	}
	if next := page.LastKey; next != "" {
		// A short page with a key is not the end: the Auth Service caps a
		// page at 1 MiB.
		s.key = next
		return false, nil
	}
	s.key = ""
	if s.open {
		return true, nil
	}
	// The window is closed and read to the end: move on to the next one.
	if end := s.to.Unix(); end > s.pos.From {
		s.pos = SearchPosition{From: end}
		clear(s.seen)
		return false, sink.Progress(ctx, s.pos)
	}
	return false, nil
}

func (s *Search) request() *auditlogpb.GetUnstructuredEventsRequest {
	req := &auditlogpb.GetUnstructuredEventsRequest{}
	req.SetNamespace("default")
	req.SetStartDate(timestamppb.New(s.from))
	req.SetEndDate(timestamppb.New(s.to))
	req.SetEventTypes(s.cfg.Types)
	req.SetLimit(int32(s.cfg.PageSize))
	req.SetStartKey(s.key)
	// Ascending. The enum names 0 "descending", but the Auth Service reads
	// the number as types.EventOrder, where 0 is ascending; the api client
	// sends types.EventOrderAscending (0) the same way.
	req.SetOrder(auditlogpb.Order(types.EventOrderAscending))
	return req
}

func (s *Search) deliver(ctx context.Context, ev *Event, sink Sink) error {
	sec := ev.Seconds
	id := ev.ID
	switch {
	case sec == s.pos.From && s.seen[id]:
		s.Stats.Duplicates++
		return nil
	case sec > s.pos.From:
		// A fresh slice: earlier positions share the old one.
		s.pos = SearchPosition{From: sec, Tail: []string{id}}
		clear(s.seen)
		s.seen[id] = true
	case sec == s.pos.From:
		s.pos.Tail = append(s.pos.Tail, id)
		s.seen[id] = true
		// Below From only if the server breaks ascending order: hand it over
		// (at least once) without moving the position back.
	}
	if s.skip[ev.Type] || (len(s.types) > 0 && !s.types[ev.Type]) {
		s.Stats.Skipped++
		return sink.Progress(ctx, s.pos)
	}
	s.Stats.Events++
	return sink.Event(ctx, ev, s.pos)
}

func set(l []string) map[string]bool {
	m := make(map[string]bool, len(l))
	for _, v := range l {
		m[v] = true
	}
	return m
}

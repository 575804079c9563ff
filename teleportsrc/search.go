package teleportsrc

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
)

// Sink receives what the readers produce, in order. Both calls may block
// (bounded queue) and return ctx.Err() when the input stops.
type Sink interface {
	// Event hands over one event and the position just after it.
	Event(ctx context.Context, ev *Event, after db.Mark) error
	// Progress records a position reached without an event to hand over
	// (a filtered event, an empty time window, a finished chunk).
	Progress(ctx context.Context, at db.Mark) error
}

// Index answers whether the event uid of second sec was handed over
// already: the delivered-event index, for events that may be read twice
// (late-event re-scans, a switch between export modes). An error (the db
// could not be read) fails the reader, which retries: guessing "not seen"
// would send duplicates.
type Index interface {
	Seen(sec int64, uid string) (bool, error)
}

// SearchKey is the db key of the search reader.
const SearchKey = "search"

// SearchPosition is where the search reader resumes: every event before
// second From has been handed over, and so have the events of second From
// whose ids are in Tail. A fresh query from From therefore re-reads only the
// events of one second, and skips those by id. Page keys are never stored:
// they are opaque, backend-specific and may not survive a restart.
type SearchPosition struct {
	From int64    `json:"from"`
	Tail []string `json:"tail,omitempty"`
	// CheckUntil: events up to this second may have been handed over by the
	// bulk export before a switch to search; the index says which.
	CheckUntil int64 `json:"check_until,omitempty"`
}

// Key implements db.Mark.
func (p SearchPosition) Key() string { return SearchKey }

// Value implements db.Mark.
func (p SearchPosition) Value() []byte {
	b, _ := json.Marshal(p) // a struct of ints and strings cannot fail
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

// HandedOver reports whether the position covers the event of second sec
// with uid id: it is before second From, or of second From and in Tail.
// Events that became visible only after the reader passed their second are
// covered but were not handed over; see mayRescan.
func (p SearchPosition) HandedOver(sec int64, id string) bool {
	return p.handedOver(sec, id, nil)
}

// handedOver is HandedOver with Tail as a set, for a caller that keeps one.
func (p SearchPosition) handedOver(sec int64, id string, tail map[string]bool) bool {
	switch {
	case sec != p.From:
		return sec < p.From
	case tail != nil:
		return tail[id]
	}
	return slices.Contains(p.Tail, id)
}

// mayRescan reports whether events of second sec are recent enough for the
// search's settle re-scan (twice the settle period, so that a re-scan never
// meets an event the reader has forgotten). The search remembers who handed
// such events over, in memory and in the index, and the bulk export, after
// a switch from search, asks the index about them: both must agree.
func mayRescan(sec int64, now time.Time, settle time.Duration) bool {
	return settle > 0 && sec >= now.Add(-2*settle).Unix()
}

// SearchConfig tunes the search reader.
type SearchConfig struct {
	Window   time.Duration // searchWindow if zero
	PageSize int           // searchPageSize if zero
	// Concurrency is how many windows are read at once during a backfill
	// (see readAhead); 1 still reads the next page while one is handed over.
	Concurrency int
	Types       []string
	Skip        []string
	// Settle is how far behind the newest event delivered the reader looks
	// again, once caught up, for events that became visible late (DynamoDB,
	// Firestore, several Auth Services). 0 turns the re-scan off.
	Settle time.Duration
	// Index is consulted for events that may have been handed over before.
	Index Index
	// Watch sees every event read, exported or filtered out (sessions are
	// found through it).
	Watch func(*Event)
	// Logf reports late events; Warnf events skipped for size.
	Logf, Warnf func(format string, args ...any)
}

// What a SearchConfig left zero gets; the settings (window_size,
// page_size) normally say.
const (
	searchWindow   = 24 * time.Hour
	searchPageSize = 10000 // the most the Auth Service returns
)

// withDefaults fills what is unset or out of range: a zero Window would
// never move on.
func (c SearchConfig) withDefaults() SearchConfig {
	if c.Window <= 0 {
		c.Window = searchWindow
	}
	if c.PageSize <= 0 {
		c.PageSize = searchPageSize
	}
	if c.Concurrency < 1 {
		c.Concurrency = 1
	}
	if c.Settle < 0 {
		c.Settle = 0
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.Warnf == nil {
		c.Warnf = c.Logf
	}
	return c
}

// Search reads the audit log in ascending time order through
// SearchUnstructuredEvents, in windows of at most Window, following the
// server's page keys. It is not safe for concurrent use.
type Search struct {
	cfg    SearchConfig
	filter typeFilter
	now    func() time.Time

	pos  SearchPosition
	seen map[string]bool // Tail as a set

	// the query in progress
	key      string
	from, to time.Time
	open     bool      // to is "now": the window is still filling
	skipTo   time.Time // start queries after an event too large to return

	recent     map[string]int64 // uids handed over lately, by second
	lastRescan time.Time
	ahead      readAhead

	Stats SearchStats
}

// SearchStats counts what the reader did; safe to read from any goroutine.
type SearchStats struct {
	Late      atomic.Int64 // found by the settle re-scan
	Oversized atomic.Int64 // too large for Teleport to return
}

// NewSearch resumes from pos.
func NewSearch(cfg SearchConfig, pos SearchPosition, now func() time.Time) *Search {
	cfg = cfg.withDefaults()
	s := &Search{cfg: cfg, now: now, pos: pos, seen: map[string]bool{}, filter: newTypeFilter(cfg.Types, cfg.Skip), recent: map[string]int64{}}
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
		if s.skipTo.After(s.from) {
			s.from = s.skipTo
		}
		s.to = windowEnd(s.pos.FromTime(), s.cfg.Window)
		s.open = !s.to.Before(now)
		if s.open {
			s.to = now
		}
		if s.to.Before(s.from) {
			if s.open {
				return true, nil // start_time is in the future
			}
			// Nothing left of a closed window: an event too large to
			// return was skipped at its very end.
			return false, s.finishWindow(ctx, sink)
		}
	}
	page, err := s.fetch(ctx, c, query{from: s.from, to: s.to, key: s.key})
	if err != nil {
		if big, ok := ParseOversized(err); ok {
			return false, s.skipOversized(ctx, c, sink, big)
		}
		if s.key != "" && KeyRefused(err) {
			s.cfg.Warnf("Teleport refused the page key it gave out (%s): reading again from the saved position %s, which repeats nothing",
				short(trace.UserMessage(err)), s.pos.FromTime().Format(time.RFC3339))
			s.key = ""
			return false, nil
		}
		return false, err
	}
	err = s.deliverAll(ctx, &page, sink)
	page.Free()
	if err != nil {
		return false, err
	}
	if next := page.LastKey; next != "" {
		// A short page with a key is not the end: the Auth Service caps a
		// page at 1 MiB.
		s.key = next
		return false, nil
	}
	s.key = ""
	if s.open {
		if err := s.rescan(ctx, c, sink); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, s.finishWindow(ctx, sink)
}

// windowEnd is where the window starting at from ends: after window, or at
// the next UTC midnight if that comes first. The file audit log re-reads the
// files of every day a query touches, so a window that stays within one day
// reads fewer of them.
func windowEnd(from time.Time, window time.Duration) time.Time {
	end := from.Add(window)
	if midnight := from.Truncate(24 * time.Hour).Add(24 * time.Hour); midnight.Before(end) {
		return midnight
	}
	return end
}

// finishWindow moves the position to the end of the closed window just
// read, unless an event of that second already moved it there.
func (s *Search) finishWindow(ctx context.Context, sink Sink) error {
	end := s.to.Unix()
	if end <= s.pos.From {
		return nil
	}
	s.pos = SearchPosition{From: end, CheckUntil: s.pos.CheckUntil}
	clear(s.seen)
	return sink.Progress(ctx, s.pos)
}

// searchRequest asks for the events from..to (inclusive), oldest first.
func searchRequest(eventTypes []string, pageSize int, from, to time.Time, key string) *auditlogpb.GetUnstructuredEventsRequest {
	req := &auditlogpb.GetUnstructuredEventsRequest{}
	req.SetNamespace("default")
	req.SetStartDate(timestamppb.New(from))
	req.SetEndDate(timestamppb.New(to))
	req.SetEventTypes(eventTypes)
	req.SetLimit(int32(pageSize))
	req.SetStartKey(key)
	// The enum names 0 "descending", but the Auth Service reads the number
	// as types.EventOrder, where 0 is ascending; the api client sends
	// types.EventOrderAscending the same way.
	req.SetOrder(auditlogpb.Order(types.EventOrderAscending))
	return req
}

// searchAll runs a query page by page, following the server's page keys,
// and calls fn with each event until fn says stop or fails.
func searchAll(ctx context.Context, c Client, eventTypes []string, pageSize int, from, to time.Time, fn func(*Event) (stop bool, err error)) error {
	for key := ""; ; {
		page, err := c.SearchEvents(ctx, searchRequest(eventTypes, pageSize, from, to, key))
		if err != nil {
			return err
		}
		stop := false
		for i := 0; i < len(page.Events) && !stop && err == nil; i++ {
			stop, err = fn(&page.Events[i])
		}
		page.Free()
		if stop || err != nil || page.LastKey == "" {
			return err
		}
		key = page.LastKey
	}
}

func (s *Search) deliverAll(ctx context.Context, page *Page, sink Sink) error {
	for i := range page.Events {
		if err := s.deliver(ctx, &page.Events[i], false, sink); err != nil {
			return err
		}
	}
	return nil
}

// deliver hands over an event read by the reader (late: by the re-scan)
// unless it was handed over before, and makes it part of the position.
func (s *Search) deliver(ctx context.Context, ev *Event, late bool, sink Sink) error {
	if seen, err := s.handedOver(ev, late); seen || err != nil {
		return err
	}
	if late {
		s.Stats.Late.Add(1)
		s.cfg.Logf("found late event %s (%s) from %s, %s after it happened", ev.ID, ev.Type,
			ev.Time().Format(time.RFC3339Nano), s.now().Sub(ev.Time()).Round(time.Millisecond))
	}
	switch sec, id := ev.Seconds, ev.ID; {
	case sec > s.pos.From:
		// A fresh slice: earlier positions share the old one.
		s.pos = SearchPosition{From: sec, Tail: []string{id}, CheckUntil: s.pos.CheckUntil}
		clear(s.seen)
		s.seen[id] = true
	case sec == s.pos.From:
		s.pos.Tail = append(s.pos.Tail, id)
		s.seen[id] = true
		// Before From: a late event (or the server broke ascending order).
		// Hand it over without moving the position back.
	}
	return s.hand(ctx, ev, s.pos, sink)
}

// handedOver reports whether an event read by the reader (late: by the
// re-scan) was handed over before: lately, by this reader; according to the
// position; or according to the index, for events others may have handed
// over: the bulk export before a switch to search (up to CheckUntil), and,
// for late events, this reader before a restart.
func (s *Search) handedOver(ev *Event, late bool) (bool, error) {
	sec, id := ev.Seconds, ev.ID
	if _, ok := s.recent[id]; ok {
		return true, nil
	}
	// Before second From the position says nothing of an event read now:
	// the reader did not see it when it passed.
	behind := sec < s.pos.From
	if !behind && s.pos.handedOver(sec, id, s.seen) {
		return true, nil
	}
	if s.cfg.Index == nil || (!late && !behind && sec > s.pos.CheckUntil) {
		return false, nil
	}
	return s.cfg.Index.Seen(sec, id)
}

// hand passes an event (or, if it is filtered out, only its position) on.
func (s *Search) hand(ctx context.Context, ev *Event, at SearchPosition, sink Sink) error {
	if s.cfg.Watch != nil {
		s.cfg.Watch(ev)
	}
	if !s.filter.keep(ev.Type) {
		return sink.Progress(ctx, at)
	}
	if mayRescan(ev.Seconds, s.now(), s.cfg.Settle) {
		// A re-scan may read it again, here or after a restart.
		ev.Remember = true
		s.recent[ev.ID] = ev.Seconds
	}
	return sink.Event(ctx, ev, at)
}

// rescan looks again, once per half settle period, at the events behind the
// newest one handed over that are recent enough to have been invisible when
// the reader passed them (within the settle period of now), and hands over
// those it did not see before. Every event it could meet was remembered when
// handed over.
func (s *Search) rescan(ctx context.Context, c Client, sink Sink) error {
	now := s.now()
	if s.cfg.Settle <= 0 || now.Sub(s.lastRescan) < s.cfg.Settle/2 {
		return nil
	}
	s.lastRescan = now
	from := s.pos.FromTime().Add(-s.cfg.Settle)
	if recent := now.Add(-s.cfg.Settle); from.Before(recent) {
		from = recent
	}
	// Only what the reader has passed: its last query ended at s.to, and
	// newer events are its own to read.
	to := s.pos.FromTime().Add(time.Second - time.Nanosecond)
	if s.to.Before(to) {
		to = s.to
	}
	for id, sec := range s.recent {
		if !mayRescan(sec, now, s.cfg.Settle) {
			delete(s.recent, id)
		}
	}
	if to.Before(from) {
		return nil // the newest event handed over is older than the settle period
	}
	err := searchAll(ctx, c, s.cfg.Types, s.cfg.PageSize, from, to, func(ev *Event) (bool, error) {
		return false, s.deliver(ctx, ev, true, sink)
	})
	if _, ok := ParseOversized(err); ok {
		return nil // the main reader handles it; the next re-scan starts over
	}
	if err != nil {
		s.lastRescan = time.Time{} // again at the next step, not Settle/2 later
	}
	return err
}

// typeFilter applies the types and skip_event_types settings.
type typeFilter struct{ types, skip map[string]bool }

func newTypeFilter(types, skip []string) typeFilter {
	return typeFilter{types: set(types), skip: set(skip)}
}

func (f typeFilter) keep(typ string) bool {
	return !f.skip[typ] && (len(f.types) == 0 || f.types[typ])
}

func set(l []string) map[string]bool {
	m := make(map[string]bool, len(l))
	for _, v := range l {
		m[v] = true
	}
	return m
}

// StartAfterWindow is how far after start_time FindStartAfter looks for
// the event: the Event Handler saves the start of its query window
// (window_time), up to a day before the last event it sent.
const StartAfterWindow = 48 * time.Hour

// FindStartAfter finds the event uid at or after from, within
// StartAfterWindow and not after now, and returns its second and the ids of
// that second up to and including it, in the server's order: what another
// exporter that stopped at that event has already sent of that second.
func FindStartAfter(ctx context.Context, c Client, from, now time.Time, uid string, pageSize int) (time.Time, []string, error) {
	from = from.Truncate(time.Second)
	to := from.Add(StartAfterWindow)
	if now.Before(to) {
		to = now
	}
	var second int64
	var ids []string
	found := false
	err := searchAll(ctx, c, nil, pageSize, from, to, func(ev *Event) (bool, error) {
		if ev.Seconds != second {
			second, ids = ev.Seconds, ids[:0]
		}
		ids = append(ids, ev.ID)
		found = ev.ID == uid
		return found, nil
	})
	switch {
	case err != nil:
		return time.Time{}, nil, err
	case !found:
		return time.Time{}, nil, fmt.Errorf("no event %s between %s and %s: start_time must be at or up to %s before that event's time",
			uid, from.Format(time.RFC3339), to.Format(time.RFC3339), StartAfterWindow)
	}
	return time.Unix(second, 0).UTC(), ids, nil
}

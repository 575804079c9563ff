package teleportsrc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gravitational/trace"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
)

// Cursor keys of the bulk export: one per chunk, one per finished date.
const bulkPrefix = "bulk/"

// ChunkPosition is where the export of one chunk stands.
type ChunkPosition struct {
	Date   string `json:"-"`
	Chunk  string `json:"-"`
	Cursor string `json:"cursor,omitempty"`
	Done   bool   `json:"done,omitempty"`
	key    string // built once: the queue compares keys per event
}

func newChunkPosition(date, chunk string) ChunkPosition {
	p := ChunkPosition{Date: date, Chunk: chunk}
	p.key = p.Key()
	return p
}

// Key implements db.Mark.
func (p ChunkPosition) Key() string {
	if p.key != "" {
		return p.key
	}
	return bulkPrefix + p.Date + "/" + p.Chunk
}

// Value implements db.Mark.
func (p ChunkPosition) Value() []byte {
	b, _ := json.Marshal(p)
	return b
}

// dateDone marks a UTC date whose every chunk is exported and which is past
// the revisit window.
type dateDone string

func (d dateDone) Key() string   { return bulkPrefix + string(d) }
func (d dateDone) Value() []byte { return []byte(`{"done":true}`) }

// BulkState is what the bulk export has saved: finished dates and the
// chunks of the others.
type BulkState struct {
	DoneDates map[string]bool
	Chunks    map[string]map[string]ChunkPosition // date → chunk → position
}

// Clear returns the marks that delete this state from its key space, for a
// bulk export that starts over (after search ran).
func (st BulkState) Clear() []db.Mark {
	var marks []db.Mark
	for date := range st.DoneDates {
		marks = append(marks, db.Delete(dateDone(date).Key()))
	}
	for _, chunks := range st.Chunks {
		for _, p := range chunks {
			marks = append(marks, db.Delete(p.Key()))
		}
	}
	return marks
}

// LoadBulkState reads the saved state from a key space.
func LoadBulkState(sp *db.Space) (BulkState, error) {
	st := BulkState{DoneDates: map[string]bool{}, Chunks: map[string]map[string]ChunkPosition{}}
	err := sp.Scan(bulkPrefix, func(key string, val []byte) error {
		rest := strings.TrimPrefix(key, bulkPrefix)
		date, chunk, isChunk := strings.Cut(rest, "/")
		if !isChunk {
			st.DoneDates[date] = true
			return nil
		}
		var p ChunkPosition
		if err := json.Unmarshal(val, &p); err != nil {
			return fmt.Errorf("stored position of chunk %s is corrupt: %w", key, err)
		}
		p.Date, p.Chunk = date, chunk
		p.key = p.Key()
		if st.Chunks[date] == nil {
			st.Chunks[date] = map[string]ChunkPosition{}
		}
		st.Chunks[date][chunk] = p
		return nil
	})
	return st, err
}

// OldestOpenDate is the first date the bulk export has not finished, or ""
// if it started none.
func (st BulkState) OldestOpenDate() string {
	var open []string
	for d := range st.Chunks {
		if !st.DoneDates[d] {
			open = append(open, d)
		}
	}
	sort.Strings(open)
	if len(open) == 0 {
		return ""
	}
	return open[0]
}

// LastDoneDate is the newest finished date, or "".
func (st BulkState) LastDoneDate() string {
	last := ""
	for d := range st.DoneDates {
		if d > last {
			last = d
		}
	}
	return last
}

// ProbeBulk asks once whether the cluster supports bulk export, as the
// Event Handler does: backends without it answer NotImplemented.
func ProbeBulk(ctx context.Context, c Client, now time.Time) (bool, error) {
	_, err := c.ExportChunks(ctx, now.Add(48*time.Hour))
	switch {
	case err == nil:
		return true, nil
	case trace.IsNotImplemented(err):
		return false, nil
	}
	return false, err
}

// BulkConfig tunes the bulk export.
type BulkConfig struct {
	// Start: the first date exported is Start's UTC date, and on that date
	// events before Start are left out, and those of Start's second listed
	// in StartTail (start_after_uid).
	Start       time.Time
	StartTail   []string
	Concurrency int
	Types, Skip []string
	// Revisit is how many dates behind today keep being listed for chunks
	// that appear late (bulkRevisit if zero).
	Revisit int
	// Poll is how often chunk lists are read again once all are exported;
	// never more often than PollMin (bulkPollMin if zero): each listing
	// reads every open date.
	Poll, PollMin time.Duration
	// After, when switching from search, is where the search stopped:
	// events before it were handed over, except late ones; those recent
	// enough (Settle) are checked against Index instead.
	After  *SearchPosition
	Settle time.Duration
	Index  Index
	Watch  func(*Event)
	Logf   func(format string, args ...any)
}

// What a BulkConfig left zero gets.
const (
	bulkRevisit = 2                // dates behind today listed again for late chunks
	bulkPollMin = 15 * time.Second // chunk lists are read again at most this often
)

// withDefaults fills what is unset or out of range: a zero Poll would list
// chunks in a busy loop.
func (c BulkConfig) withDefaults() BulkConfig {
	if c.Concurrency < 1 {
		c.Concurrency = 1
	}
	if c.Revisit <= 0 {
		c.Revisit = bulkRevisit
	}
	if c.PollMin <= 0 {
		c.PollMin = bulkPollMin
	}
	c.Poll = max(c.Poll, c.PollMin)
	if c.Settle < 0 {
		c.Settle = 0
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c
}

// Bulk exports the audit log by UTC date and chunk (GetEventExportChunks,
// ExportUnstructuredEvents), several chunks at once, with a cursor per
// chunk. Events within a date come in no particular order.
type Bulk struct {
	cfg    BulkConfig
	now    func() time.Time
	filter typeFilter

	mu       sync.Mutex
	state    BulkState
	caughtUp atomic.Bool
}

// CaughtUp reports whether every chunk listed so far is exported.
func (b *Bulk) CaughtUp() bool { return b.caughtUp.Load() }

// NewBulk resumes from the saved state.
func NewBulk(cfg BulkConfig, state BulkState, now func() time.Time) *Bulk {
	cfg = cfg.withDefaults()
	if state.DoneDates == nil {
		state = BulkState{DoneDates: map[string]bool{}, Chunks: map[string]map[string]ChunkPosition{}}
	}
	return &Bulk{cfg: cfg, now: now, state: state, filter: newTypeFilter(cfg.Types, cfg.Skip)}
}

// Run exports until ctx ends or a call fails. Called again after a failure,
// it resumes where it stood (chunks handed over in part continue from their
// cursor).
func (b *Bulk) Run(ctx context.Context, c Client, sink Sink) error {
	for {
		b.caughtUp.Store(false)
		if err := b.Pass(ctx, c, sink); err != nil {
			return err
		}
		b.caughtUp.Store(true)
		if err := Sleep(ctx, b.cfg.Poll); err != nil {
			return err
		}
	}
}

func (b *Bulk) firstDate() time.Time {
	first := b.cfg.Start
	if b.cfg.After != nil && b.cfg.After.FromTime().After(first) {
		first = b.cfg.After.FromTime()
	}
	return first.UTC().Truncate(24 * time.Hour)
}

// Pass lists and exports every date from the first open one to today, once.
func (b *Bulk) Pass(ctx context.Context, c Client, sink Sink) error {
	today := b.now().UTC().Truncate(24 * time.Hour)
	for day := b.firstDate(); !day.After(today); day = day.Add(24 * time.Hour) {
		date := day.Format(time.DateOnly)
		b.mu.Lock()
		done := b.state.DoneDates[date]
		b.mu.Unlock()
		if done {
			continue
		}
		if err := b.exportDate(ctx, c, sink, day); err != nil {
			return err
		}
		// A date past the revisit window gets no late chunks any more.
		if today.Sub(day) > time.Duration(b.cfg.Revisit)*24*time.Hour {
			if err := b.finishDate(ctx, sink, date); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *Bulk) exportDate(ctx context.Context, c Client, sink Sink, day time.Time) error {
	date := day.Format(time.DateOnly)
	chunks, err := c.ExportChunks(ctx, day)
	if err != nil {
		return fmt.Errorf("listing the export chunks of %s: %w", date, err)
	}
	var todo []ChunkPosition
	b.mu.Lock()
	if b.state.Chunks[date] == nil {
		b.state.Chunks[date] = map[string]ChunkPosition{}
	}
	for _, id := range chunks {
		p, ok := b.state.Chunks[date][id]
		if !ok {
			p = newChunkPosition(date, id)
		}
		if !p.Done {
			todo = append(todo, p)
		}
	}
	b.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, b.cfg.Concurrency)
	errs := make(chan error, len(todo))
	var wg sync.WaitGroup
	for _, p := range todo {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(p ChunkPosition) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := b.exportChunk(ctx, c, sink, day, p); err != nil {
				errs <- err
				cancel()
			}
		}(p)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

// exportChunk streams a chunk from p's cursor. However the stream ends, the
// state keeps the cursor after the last event the sink took, for Run to
// resume from.
func (b *Bulk) exportChunk(ctx context.Context, c Client, sink Sink, day time.Time, p ChunkPosition) error {
	defer func() {
		b.mu.Lock()
		b.state.Chunks[p.Date][p.Chunk] = p
		b.mu.Unlock()
	}()
	err := c.ExportEvents(ctx, day, p.Chunk, p.Cursor, func(ev *Event, next string) error {
		at := p
		at.Cursor = next
		owned, err := b.owned(ev)
		if err != nil {
			return err
		}
		if owned && b.cfg.Watch != nil {
			// Not before: recordings of uploads before the start, or that
			// the search watched before a switch, are not this export's.
			b.cfg.Watch(ev)
		}
		if owned && b.filter.keep(ev.Type) {
			// Every event of an open date goes into the index, so that a
			// switch to search can tell what this export handed over.
			ev.Remember = true
			err = sink.Event(ctx, ev, at)
		} else {
			err = sink.Progress(ctx, at)
		}
		if err == nil {
			p = at
		}
		return err
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("exporting chunk %s of %s: %w", p.Chunk, p.Date, err)
	}
	p.Done = true
	return sink.Progress(ctx, p)
}

// owned applies start_time (and start_after_uid) and the switch point from
// search: whether the event is this export's to hand over, filters aside.
func (b *Bulk) owned(ev *Event) (bool, error) {
	if ev.Seconds < b.cfg.Start.Unix() || (ev.Seconds == b.cfg.Start.Unix() && slices.Contains(b.cfg.StartTail, ev.ID)) {
		return false, nil
	}
	if b.cfg.After == nil {
		return true, nil
	}
	searched, err := b.searchHandedOver(ev)
	return !searched, err
}

// searchHandedOver reports whether the search, before the switch, handed ev
// over: its position says so, except for events behind the position that
// became visible only after the search passed them. Those recent enough
// for its re-scan it may have handed over late, and it recorded every
// recent event it handed over in the index; the index decides for them.
func (b *Bulk) searchHandedOver(ev *Event) (bool, error) {
	a := b.cfg.After
	if ev.Seconds > a.From {
		return false, nil
	}
	if !mayRescan(ev.Seconds, b.now(), b.cfg.Settle) {
		return a.HandedOver(ev.Seconds, ev.ID), nil
	}
	if ev.Seconds == a.From && a.HandedOver(ev.Seconds, ev.ID) {
		return true, nil
	}
	if b.cfg.Index == nil {
		return false, nil
	}
	return b.cfg.Index.Seen(ev.Seconds, ev.ID)
}

// finishDate records a date as done and drops its chunk positions.
func (b *Bulk) finishDate(ctx context.Context, sink Sink, date string) error {
	b.mu.Lock()
	chunks := b.state.Chunks[date]
	delete(b.state.Chunks, date)
	b.state.DoneDates[date] = true
	b.mu.Unlock()
	if err := sink.Progress(ctx, dateDone(date)); err != nil {
		return err
	}
	for id := range chunks {
		if err := sink.Progress(ctx, db.Delete(ChunkPosition{Date: date, Chunk: id}.Key())); err != nil {
			return err
		}
	}
	b.cfg.Logf("exported %s in full (%d chunks)", date, len(chunks))
	return nil
}

// OldestOpenDate is the first date not finished yet.
func (b *Bulk) OldestOpenDate() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := b.state.OldestOpenDate(); d != "" {
		return d
	}
	return b.firstDate().Format(time.DateOnly)
}

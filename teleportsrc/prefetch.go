package teleportsrc

import (
	"context"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
)

// query is one page query of the search reader: a window and a page key
// (the event types and page size are the reader's, the same for all).
type query struct {
	from, to time.Time
	key      string
}

func (q query) is(o query) bool { return q.from.Equal(o.from) && q.to.Equal(o.to) && q.key == o.key }

// readAhead runs the page queries the search reader will ask next while it
// hands the last page over: the next page of the window being read, and the
// first page of each following closed window, so that up to Concurrency
// windows are read at once, with at most one page ahead each. A page read
// ahead is used only for exactly the query it was read for: a wrong guess
// costs a query, never an event. Nothing is read ahead into the open window
// (the one reaching now), so a caught-up reader asks only what it asks today.
type readAhead struct {
	pending []*pendingPage
}

// pendingPage is a query running or answered in the background.
type pendingPage struct {
	q      query
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when page and err are set
	page   Page
	err    error
}

// fetch returns the page of q: the one read ahead for it, or asked now.
// It then starts reading ahead what should come next.
func (s *Search) fetch(ctx context.Context, c Client, q query) (Page, error) {
	page, err, ok := s.ahead.take(ctx, q)
	// The next windows do not depend on this page: they are read meanwhile.
	s.readNextWindows(ctx, c, q)
	if !ok {
		page, err = c.SearchEvents(ctx, searchRequest(s.cfg.Types, s.cfg.PageSize, q.from, q.to, q.key))
	}
	if err != nil {
		s.ahead.reset()
		return page, err
	}
	if page.LastKey != "" {
		// The reader asks exactly this next, open window or not.
		s.readAheadFor(ctx, c, query{from: q.from, to: q.to, key: page.LastKey})
	}
	return page, nil
}

// readNextWindows starts the first page queries of the closed windows after
// q's, up to Concurrency windows in all, unless they are pending already.
func (s *Search) readNextWindows(ctx context.Context, c Client, q query) {
	windows := max(s.cfg.Concurrency, 1)
	now := s.now()
	for from, i := q.to, 1; i < windows; i++ {
		to := windowEnd(from, s.cfg.Window)
		if !to.Before(now) {
			return // the open window: read when the reader gets there
		}
		if !s.ahead.has(from) {
			s.readAheadFor(ctx, c, query{from: from, to: to})
		}
		from = to
	}
}

func (s *Search) readAheadFor(ctx context.Context, c Client, q query) {
	s.ahead.start(ctx, c, searchRequest(s.cfg.Types, s.cfg.PageSize, q.from, q.to, q.key), q)
}

// take returns the page read ahead for q, if any, and drops what was read
// ahead for q's window or earlier ones: the reader has moved past it.
func (a *readAhead) take(ctx context.Context, q query) (Page, error, bool) {
	var hit *pendingPage
	kept := a.pending[:0]
	for _, p := range a.pending {
		switch {
		case hit == nil && p.q.is(q):
			hit = p
		case p.q.from.After(q.from):
			kept = append(kept, p)
		default:
			p.discard()
		}
	}
	clear(a.pending[len(kept):])
	a.pending = kept
	if hit == nil {
		return Page{}, nil, false
	}
	select {
	case <-hit.done:
	case <-ctx.Done():
		hit.discard()
		return Page{}, ctx.Err(), true
	}
	ended := hit.ctx.Err() != nil
	hit.cancel()
	if hit.err != nil && ended {
		// Asked on a connection that has ended: ask again on this one.
		return Page{}, nil, false
	}
	return hit.page, hit.err, true
}

// has reports whether a page of the window starting at from is pending.
func (a *readAhead) has(from time.Time) bool {
	for _, p := range a.pending {
		if p.q.from.Equal(from) {
			return true
		}
	}
	return false
}

func (a *readAhead) start(ctx context.Context, c Client, req *auditlogpb.GetUnstructuredEventsRequest, q query) {
	pctx, cancel := context.WithCancel(ctx)
	p := &pendingPage{q: q, ctx: pctx, cancel: cancel, done: make(chan struct{})}
	go func() {
		p.page, p.err = c.SearchEvents(pctx, req)
		close(p.done)
	}()
	a.pending = append(a.pending, p)
}

// reset discards every pending page.
func (a *readAhead) reset() {
	for _, p := range a.pending {
		p.discard()
	}
	clear(a.pending)
	a.pending = a.pending[:0]
}

// discard stops a pending query and frees its page once it has one.
func (p *pendingPage) discard() {
	p.cancel()
	go func() {
		<-p.done
		p.page.Free()
	}()
}

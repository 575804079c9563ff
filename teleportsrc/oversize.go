package teleportsrc

import (
	"context"
	"fmt"
	"regexp"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"
)

// Oversized is an event the Auth Service refuses to return in a search: it
// is over the 1 MiB response limit and could not be trimmed.
type Oversized struct {
	Type, UID, Size string
}

// Teleport's lib/events: "%s event %s is %s and cannot be returned because
// it exceeds the maximum response size of %s".
var oversizedRE = regexp.MustCompile(`(\S+) event (\S+) is (.+?) and cannot be returned because it exceeds the maximum response size`)

// ParseOversized recognises the Auth Service's oversized-event error.
func ParseOversized(err error) (Oversized, bool) {
	if err == nil {
		return Oversized{}, false
	}
	for _, msg := range []string{trace.UserMessage(err), err.Error()} {
		if m := oversizedRE.FindStringSubmatch(msg); m != nil {
			return Oversized{Type: m[1], UID: m[2], Size: m[3]}, true
		}
	}
	return Oversized{}, false
}

// skipOversized moves the reader past an event the server cannot return.
// That event is the next one after the current page key, so a query with
// the same key fails exactly when its end reaches the event's time: bisecting
// the end finds that time, or, on a backend that keeps coarser times (DynamoDB
// seconds, Athena milliseconds), the start of its granule. Resuming just after
// it would be truncated by such a backend to before the event again, so the
// reader finishes the event's whole second instead (see finishSecond) and
// resumes at the next one. Nothing else is skipped (unless another event has
// the very same time), and the position never stalls.
func (s *Search) skipOversized(ctx context.Context, c Client, sink Sink, big Oversized) error {
	lo, hi := s.from.Add(-time.Nanosecond), s.to
	for hi.Sub(lo) > time.Nanosecond {
		mid := lo.Add(hi.Sub(lo) / 2)
		page, err := c.SearchEvents(ctx, searchRequest(s.cfg.Types, s.cfg.PageSize, s.from, mid, s.key))
		page.Free()
		switch other, ok := ParseOversized(err); {
		case err == nil:
			lo = mid
		case ok && other.UID == big.UID:
			hi = mid
		default:
			return fmt.Errorf("looking for oversized event %s: %w", big.UID, err)
		}
	}
	second := hi.Truncate(time.Second)
	if err := s.finishSecond(ctx, c, sink, big, second); err != nil {
		return err
	}
	s.Stats.Oversized.Add(1)
	s.cfg.Warnf("skipping %s event %s from %s: it is %s, over the 1 MiB Teleport can return in a search, and Teleport could not trim it",
		big.Type, big.UID, hi.Format(time.RFC3339Nano), big.Size)
	s.skipTo = second.Add(time.Second)
	s.key = ""
	return nil
}

// finishSecond hands over the events of second that come after the
// oversized event: it reads the second newest first, which returns them
// before the server meets the oversized event and fails, and hands them
// over oldest first. The events before it were handed over already.
func (s *Search) finishSecond(ctx context.Context, c Client, sink Sink, big Oversized, second time.Time) error {
	var after []Event
	end := second.Add(time.Second - time.Nanosecond)
	for key := ""; ; {
		req := searchRequest(s.cfg.Types, s.cfg.PageSize, second, end, key)
		req.SetOrder(auditlogpb.Order(types.EventOrderDescending))
		page, err := c.SearchEvents(ctx, req)
		if other, ok := ParseOversized(err); ok && other.UID == big.UID {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the rest of the second of oversized event %s: %w", big.UID, err)
		}
		for _, ev := range page.Events {
			ev.Body = append([]byte(nil), ev.Body...) // the page's buffer is reused
			after = append(after, ev)
		}
		page.Free()
		if page.LastKey == "" {
			break
		}
		key = page.LastKey
	}
	for i := len(after) - 1; i >= 0; i-- {
		if err := s.deliver(ctx, &after[i], false, sink); err != nil {
			return err
		}
	}
	return nil
}

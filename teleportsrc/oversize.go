package teleportsrc

import (
	"context"
	"fmt"
	"regexp"
	"time"

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
// the same key fails exactly when its end is at or after the event's time:
// bisecting the end finds that time to the nanosecond, and reading resumes
// just after it. Nothing else is skipped (unless another event has the very
// same nanosecond), and the position never stalls.
func (s *Search) skipOversized(ctx context.Context, c Client, big Oversized) error {
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
	s.Stats.Oversized.Add(1)
	s.cfg.Warnf("skipping %s event %s from %s: it is %s, over the 1 MiB Teleport can return in a search, and Teleport could not trim it",
		big.Type, big.UID, hi.Format(time.RFC3339Nano), big.Size)
	s.skipTo = hi.Add(time.Nanosecond)
	s.key = ""
	return nil
}

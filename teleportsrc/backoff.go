package teleportsrc

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a capped exponential delay with jitter, so that many Fluent
// Bits do not retry in step against one Auth Service.
type Backoff struct {
	Min, Max time.Duration
	failures int
}

// Next returns the delay before the next attempt.
func (b *Backoff) Next() time.Duration {
	b.failures++
	return b.Delay(b.failures)
}

// Delay is the delay after the nth failure in a row (n ≥ 1): Min doubled
// n-1 times, at most Max, ±20% jitter. Callers that keep the count
// themselves (a recording's saved attempts) use it directly.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if d <= 0 {
		return 0
	}
	j := time.Duration(rand.Int64N(int64(d)/5*2+1)) - d/5
	return d + j
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.failures = 0 }

// Sleep waits d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

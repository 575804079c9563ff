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
	cur      time.Duration
}

// Next returns the delay before the next attempt.
func (b *Backoff) Next() time.Duration {
	switch {
	case b.cur == 0:
		b.cur = b.Min
	case b.cur < b.Max:
		b.cur = min(b.cur*2, b.Max)
	}
	// ±20% jitter
	j := time.Duration(rand.Int64N(int64(b.cur)/5*2+1)) - b.cur/5
	return b.cur + j
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.cur = 0 }

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

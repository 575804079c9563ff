package teleportsrc

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBackoffDoublesUpToMaxWithJitter(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 30 * time.Second}
	for i, want := range []time.Duration{1, 2, 4, 8, 16, 30, 30, 30} {
		want *= time.Second
		for range 50 {
			d := b.Delay(i + 1)
			assert.GreaterOrEqual(t, d, want*8/10, "failure %d", i+1)
			assert.LessOrEqual(t, d, want*12/10, "failure %d", i+1)
		}
	}
	assert.LessOrEqual(t, b.Delay(1<<20), 36*time.Second, "no overflow after many failures")
}

func TestBackoffJitters(t *testing.T) {
	b := Backoff{Min: time.Minute, Max: time.Hour}
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[b.Delay(3)] = true
	}
	assert.Greater(t, len(seen), 1, "recordings failing together do not retry in step")
}

func TestBackoffNextAndReset(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 4 * time.Second}
	for _, want := range []time.Duration{1, 2, 4, 4} {
		assert.InDelta(t, float64(want*time.Second), float64(b.Next()), float64(want*time.Second)/5)
	}
	b.Reset()
	assert.InDelta(t, float64(time.Second), float64(b.Next()), float64(time.Second)/5)
}

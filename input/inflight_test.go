package input

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/emit"
)

// fakeCounters stands in for Fluent Bit's records_total and
// ring_buffer_writes_total of the instance.
type fakeCounters struct {
	mu              sync.Mutex
	records, writes float64
	broken          bool
}

func (c *fakeCounters) Read() (float64, float64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.records, c.writes, !c.broken
}

func (c *fakeCounters) add(records, writes float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records += records
	c.writes += writes
}

// handOver does what the collect and cleanup callbacks do with a batch:
// Fluent Bit appends it to its ring buffer in between (writes + 1).
func handOver(x *Instance, c *fakeCounters, b *emit.Batch, written bool) {
	x.HandOver(b)
	if written {
		c.add(0, 1)
	}
	x.Handed()
}

// counted starts an input of batches of 30 over n events, reading c.
func counted(t *testing.T, n int) (f *fixture, ids []string, x *Instance, c *fakeCounters) {
	f = newFixture(t)
	ids = f.seed(n, "e")
	x, _ = f.start(t, nil, "batch_max_records", "30")
	c = &fakeCounters{}
	x.SetCounters(c)
	return f, ids, x, c
}

// startsAt asserts that got is the events of ids from i on (a batch may
// hold fewer than batch_max_records: the fetcher may still be queueing).
func startsAt(t *testing.T, ids []string, i int, got []string, msg string) {
	t.Helper()
	require.NotEmpty(t, got)
	assert.Equal(t, ids[i:i+len(got)], got, msg)
}

func TestBatchIsCommittedOnlyOnceInAChunk(t *testing.T) {
	f, ids, x, c := counted(t, 90)

	b := take(t, x)
	first := uidsOf(t, b)
	startsAt(t, ids, 0, first, "the first batch")
	handOver(x, c, b, true)
	assert.Nil(t, b.Records, "the records are released at cleanup")
	for i := 0; i < 3; i++ {
		assert.Empty(t, x.Collect().Records, "nothing more while the batch is on the ring buffer")
	}
	assert.Zero(t, x.Stats().Records.Load(), "not committed")

	c.add(float64(len(first)), 0) // the ring-buffer collector appended it to a chunk
	next := take(t, x)
	assert.Equal(t, int64(len(first)), x.Stats().Records.Load(), "committed once in a chunk")
	startsAt(t, ids, len(first), uidsOf(t, next), "the second batch")
	handOver(x, c, next, true)

	// Killed now: the second batch never reached a chunk, so it comes again.
	x.Stop(time.Second)
	y, _ := f.start(t, nil, "batch_max_records", "30")
	startsAt(t, ids, len(first), uidsOf(t, take(t, y)), "after the kill")
}

func TestBatchDroppedByProcessorsIsNotWaitedFor(t *testing.T) {
	_, _, x, c := counted(t, 60)
	b := take(t, x)
	n := len(b.Records)
	handOver(x, c, b, false) // nothing reached the ring buffer
	take(t, x)
	assert.Equal(t, int64(n), x.Stats().Records.Load())
}

func TestInstanceCountersGoneFallsBackToTheTimeRule(t *testing.T) {
	c := &fakeCounters{}
	h := &inFlight{counters: c, interval: 250 * time.Millisecond}
	at := time.Unix(1000, 0)
	h.batch, h.since, h.counted = &emit.Batch{}, at, true
	assert.False(t, h.held(at.Add(time.Second), false))
	c.broken = true
	assert.True(t, h.held(at.Add(time.Second), false))
	assert.False(t, h.held(at.Add(700*time.Millisecond), false))
}

func TestTimeRule(t *testing.T) {
	at := time.Unix(1000, 0)
	fresh := func() *inFlight {
		return &inFlight{interval: 250 * time.Millisecond, batch: &emit.Batch{}, since: at}
	}
	h := fresh()
	assert.False(t, h.held(at.Add(749*time.Millisecond), false))
	assert.True(t, h.held(at.Add(750*time.Millisecond), false), "three ring-buffer intervals")

	// Backpressure stops Fluent Bit's ring-buffer collector for this input.
	h = fresh()
	h.pause()
	assert.False(t, h.held(at.Add(time.Hour), false))
	h.resume(at.Add(time.Hour))
	assert.False(t, h.held(at.Add(time.Hour+700*time.Millisecond), false), "counted from the resume")
	assert.True(t, h.held(at.Add(time.Hour+750*time.Millisecond), false))

	// At exit: the shutdown pauses twice (flb_engine_stop_ingestion, then
	// flb_engine_shutdown) and its engine ran the collector in between.
	h = fresh()
	h.pause()
	h.pause()
	assert.True(t, h.held(at.Add(time.Second), true))
	assert.False(t, h.held(at.Add(500*time.Millisecond), true), "too recent")

	// Paused by backpressure before the shutdown: Fluent Bit skips both
	// shutdown pauses, and the batch is still on the ring buffer.
	h = fresh()
	h.pause()
	assert.False(t, h.held(at.Add(time.Hour), true))
}

func TestExitCommitsWhatIsInAChunk(t *testing.T) {
	f, ids, x, c := counted(t, 60)
	b := take(t, x)
	n := len(b.Records)
	handOver(x, c, b, true)
	c.add(float64(n), 0)
	x.Pause()
	x.Pause()
	x.Exiting()
	x.Stop(time.Second)
	y, _ := f.start(t, nil, "batch_max_records", "30")
	startsAt(t, ids, n, uidsOf(t, take(t, y)), "the batch in a chunk at exit is not sent again")
}

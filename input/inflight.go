package input

import (
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/emit"
)

// Fluent Bit 5.1.1 runs every Go input threaded. Its collect callback
// (src/flb_plugin_proxy.c flb_proxy_input_cb_collect) only copies the
// batch onto the input's ring buffer (src/flb_input_chunk.c
// append_to_ring_buffer) and calls the cleanup callback at once; the engine
// thread moves the ring buffer into chunks later, every 250 ms
// (src/flb_engine.c, FLB_DEV_RB_MS) and never while the input is paused by
// backpressure (flb_input_chunk_ring_buffer_collector). What is still on
// the ring buffer at a kill, or when the input exits
// (flb_input_instance_destroy), is lost. So a batch's positions are saved
// only once the batch is known to be in a chunk, and only one batch is in
// flight: the next one is handed over once the previous one is committed.
//
// A batch is known to be in a chunk when Fluent Bit's own
// fluentbit_input_records_total of the instance has grown since the batch
// was handed over: input_chunk_append_raw adds to it as it appends the
// ring-buffer entry to a chunk, and the batch was the only entry. If Fluent
// Bit wrote nothing to the ring buffer (fluentbit_input_ring_buffer_writes_total
// did not grow: the input's processors dropped every record), there is
// nothing to wait for. Without the counters (Fluent Bit built without
// metrics), a time rule stands in: the batch counts as in a chunk once the
// input has run unpaused for ringBufferMargin collector intervals since it
// was handed over, and at exit only if both of the shutdown's pauses came
// after the last resume (a backpressure pause stops the collector).

// Counters reads the input instance's own Fluent Bit counters.
type Counters interface {
	// Read returns fluentbit_input_records_total and
	// fluentbit_input_ring_buffer_writes_total, ok false if unreadable.
	Read() (records, writes float64, ok bool)
}

// ringBufferMargin is how many ring-buffer intervals the time rule waits.
const ringBufferMargin = 3

// RingBufferMargin is how long the time rule waits (for the log).
func RingBufferMargin() time.Duration { return ringBufferMargin * ringBufferInterval() }

// ringBufferInterval is Fluent Bit's ring-buffer collector interval:
// FLB_DEV_RB_MS milliseconds, 250 by default (src/flb_engine.c).
func ringBufferInterval() time.Duration {
	if ms, err := strconv.Atoi(os.Getenv("FLB_DEV_RB_MS")); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return 250 * time.Millisecond
}

// inFlight tracks the batch in flight.
type inFlight struct {
	mu       sync.Mutex
	counters Counters // nil: the time rule
	interval time.Duration

	batch   *emit.Batch // handed over, not yet committed
	records int         // the batch's record count (its Records are released at cleanup)
	counted bool        // base values read from the counters
	baseRec float64
	baseWr  float64
	dropped bool      // Fluent Bit wrote nothing to its ring buffer
	since   time.Time // handed over, or resumed if later

	paused bool
	pauses int // Pause calls since the last Resume
}

// SetCounters lets the instance read Fluent Bit's counters; call it before
// the first collect. Without it the time rule applies.
func (x *Instance) SetCounters(c Counters) {
	x.flight.mu.Lock()
	defer x.flight.mu.Unlock()
	x.flight.counters = c
}

// HandOver records the batch that the collect callback is about to return
// to Fluent Bit.
func (x *Instance) HandOver(b *emit.Batch) {
	h := &x.flight
	h.mu.Lock()
	defer h.mu.Unlock()
	h.batch, h.records = b, len(b.Records)
	h.dropped, h.since = false, x.now()
	h.counted = false
	if h.counters != nil {
		h.baseRec, h.baseWr, h.counted = h.counters.Read()
	}
}

// Handed runs at the cleanup callback: Fluent Bit has its own copy now.
func (x *Instance) Handed() {
	h := &x.flight
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.batch == nil {
		return
	}
	h.batch.Records = nil
	if h.counted {
		if _, wr, ok := h.counters.Read(); ok && wr == h.baseWr {
			h.dropped = true
		}
	}
}

// settle commits the batch in flight if Fluent Bit holds it in a chunk, and
// reports whether nothing is in flight now.
func (x *Instance) settle(exiting bool) bool {
	h := &x.flight
	h.mu.Lock()
	b, n := h.batch, h.records
	if b == nil {
		h.mu.Unlock()
		return true
	}
	held := h.held(x.now(), exiting)
	if held {
		h.batch = nil
	}
	h.mu.Unlock()
	if held {
		x.commit(b, n)
	}
	return held
}

func (h *inFlight) held(now time.Time, exiting bool) bool {
	if h.dropped {
		return true
	}
	if h.counted {
		if rec, _, ok := h.counters.Read(); ok {
			return rec > h.baseRec
		}
	}
	if exiting && h.pauses != 2 || !exiting && h.paused {
		return false
	}
	return now.Sub(h.since) >= ringBufferMargin*h.interval
}

// Exiting runs when Fluent Bit exits the input: the batch in flight is
// committed if it reached a chunk; if not, Fluent Bit drops it with its
// ring buffer and the next start fetches it again.
func (x *Instance) Exiting() {
	x.settle(true)
}

func (h *inFlight) pause() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.paused = true
	h.pauses++
}

func (h *inFlight) resume(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.paused, h.pauses = false, 0
	if now.After(h.since) {
		h.since = now
	}
}

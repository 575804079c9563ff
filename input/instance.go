// Package input runs one teleport input: goroutines fetch audit events (and
// session recordings) into bounded queues, Fluent Bit's collect callback
// takes batches from them, and positions are committed once Fluent Bit holds
// a batch in a chunk.
package input

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/conf"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/emit"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/metrics"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
)

// Logger writes the instance's log lines.
type Logger interface {
	Errorf(format string, args ...any)
	Warnf(format string, args ...any)
	Infof(format string, args ...any)
	Debugf(format string, args ...any)
}

// Options configure an Instance.
type Options struct {
	Config conf.Config
	// Name identifies the instance inside the cluster's key space: the
	// input's alias, or its instance name (teleport.0) when it has none.
	Name string
	Log  Logger
	// Dial and Now default to the real Teleport client and clock.
	Dial teleportsrc.Dialer
	Now  func() time.Time
	// Timing changes delays that are not settings (tests shorten them).
	Timing Timing
	// DB replaces the db directory of Config.DB (tests pass a
	// db.Memory that fails on demand). The instance closes it.
	DB *db.DB
}

// Timing holds the delays that are not settings. A zero field keeps its
// default; the readers' own delays default in teleportsrc.
type Timing struct {
	// RetryMin and RetryMax bound the backoff between connections.
	RetryMin, RetryMax time.Duration
	// PruneEvery is how often the delivered-event index is trimmed.
	PruneEvery time.Duration
	// BlockedRetry is how often a fault that retrying cannot heal (see
	// blockedError) is checked again.
	BlockedRetry time.Duration
	// BulkPollMin: chunk lists are read again at most this often.
	BulkPollMin time.Duration
	// SessionRetryMin and SessionRetryMax bound the delay before a
	// recording is asked for again.
	SessionRetryMin, SessionRetryMax time.Duration
}

// Defaults of Timing.
const (
	retryMin     = time.Second
	retryMax     = 30 * time.Second
	pruneEvery   = 10 * time.Minute
	blockedRetry = 5 * time.Minute
)

func (t Timing) withDefaults() Timing {
	if t.RetryMin <= 0 {
		t.RetryMin = retryMin
	}
	if t.RetryMax <= 0 {
		t.RetryMax = retryMax
	}
	t.RetryMax = max(t.RetryMax, t.RetryMin)
	if t.PruneEvery <= 0 {
		t.PruneEvery = pruneEvery
	}
	if t.BlockedRetry <= 0 {
		t.BlockedRetry = blockedRetry
	}
	return t
}

// Instance is one running teleport input.
type Instance struct {
	cfg     conf.Config
	timing  Timing
	name    string
	log     Logger
	dial    teleportsrc.Dialer
	now     func() time.Time
	db      *db.DB
	space   atomic.Pointer[db.Space]
	readers atomic.Pointer[readers]
	// unregisterMetrics removes the instance from the metrics endpoint.
	unregisterMetrics func()
	lead              *leadership // nil without leader election

	// Audit events and session recordings queue apart, so that neither
	// holds the other up.
	audit    *emit.Queue
	sessions *emit.Queue

	encoders sync.Pool

	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once

	pauseMu sync.Mutex
	paused  bool
	resumed chan struct{} // closed on Resume

	flight inFlight // the batch Fluent Bit may not hold in a chunk yet

	stats        Stats
	expiryWarned atomic.Int64 // the identity expiry last warned about (unix seconds)

	blockedMu  sync.Mutex
	blockedMsg string // the fault that blocks the export, "" if none

	// What a commit could not save, saved first by the next one; until
	// then nothing new is handed over.
	saveMu    sync.Mutex
	unsaved   *emit.Batch
	saveRetry teleportsrc.Backoff
	saveAfter time.Time
	holding   atomic.Bool // unsaved != nil
}

// Stats are the instance's counters, safe to read from any goroutine.
type Stats struct {
	Records        atomic.Int64 // handed to Fluent Bit
	SessionRecords atomic.Int64 // of which from session recordings
	Bytes          atomic.Int64
	Retries        atomic.Int64
	Errors         atomic.Int64
	Connected      atomic.Bool
	NewestSecond   atomic.Int64 // the newest audit event handed over (unix seconds)
	IdentityExpiry atomic.Int64 // unix seconds, 0 if unknown
	Blocked        atomic.Bool  // a fault retrying cannot heal holds the export
}

// New opens the db; it does not touch the network, so it is
// quick enough for Fluent Bit's Init. A store held by another process fails
// here with an error that says so.
func New(o Options) (*Instance, error) {
	if o.Dial == nil {
		o.Dial = teleportsrc.Dial
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	lead, err := newLeadership(&o)
	if err != nil {
		return nil, err
	}
	store := o.DB
	if store == nil {
		if store, err = db.Open(o.Config.DB, o.Log); err != nil {
			return nil, err
		}
	}
	x := &Instance{
		cfg: o.Config, timing: o.Timing.withDefaults(), name: o.Name, log: o.Log, dial: o.Dial, now: o.Now,
		db:       store,
		lead:     lead,
		audit:    emit.NewQueue(o.Config.BatchMaxRecords, o.Config.BatchMaxBytes),
		sessions: emit.NewQueue(o.Config.BatchMaxRecords, o.Config.BatchMaxBytes),
		done:     make(chan struct{}),
	}
	x.flight.interval = ringBufferInterval()
	x.encoders.New = func() any { return &encoder{enc: emit.Encoder{Message: o.Config.Format == conf.FormatMessage}} }
	x.saveRetry = teleportsrc.Backoff{Min: x.timing.RetryMin, Max: x.timing.RetryMax}
	if o.Config.MetricsListen != "" {
		unregister, err := metrics.Register(o.Config.MetricsListen, x.Snapshot)
		if err != nil {
			_ = store.Close()
			return nil, err
		}
		x.unregisterMetrics = unregister
	}
	return x, nil
}

// Stats exposes the counters.
func (x *Instance) Stats() *Stats { return &x.stats }

// Start begins fetching in the background.
func (x *Instance) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	go func() {
		defer close(x.done)
		var wg sync.WaitGroup
		defer wg.Wait() // run returns once ctx is done, which ends the status loop too
		if x.cfg.StatusInterval > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				x.statusLoop(ctx, x.cfg.StatusInterval)
			}()
		}
		x.export(ctx)
	}()
}

// Stop ends fetching and releases the store, waiting at most timeout for the
// fetchers: Fluent Bit's shutdown and hot reload must not wait on the
// network. Events still queued are dropped; they were never committed, so
// the next start fetches them again. Stop may be called more than once.
func (x *Instance) Stop(timeout time.Duration) {
	x.stopOnce.Do(func() { x.stop(timeout) })
}

func (x *Instance) stop(timeout time.Duration) {
	if x.unregisterMetrics != nil {
		x.unregisterMetrics()
	}
	if x.cancel != nil {
		x.cancel()
		select {
		case <-x.done:
		case <-time.After(timeout):
			x.log.Warnf("the fetcher did not stop within %s; leaving it to finish in the background", timeout)
		}
	}
	if err := x.db.Close(); err != nil {
		x.log.Warnf("closing db %s: %v", x.cfg.DB, err)
	}
}

// Pause stops fetching (Fluent Bit's backpressure); queued events stay.
func (x *Instance) Pause() {
	x.flight.pause()
	x.pauseMu.Lock()
	defer x.pauseMu.Unlock()
	if !x.paused {
		x.paused = true
		x.resumed = make(chan struct{})
	}
}

// Resume restarts fetching.
func (x *Instance) Resume() {
	x.flight.resume(x.now())
	x.pauseMu.Lock()
	defer x.pauseMu.Unlock()
	if x.paused {
		x.paused = false
		close(x.resumed)
	}
}

// Paused reports whether Fluent Bit paused the input.
func (x *Instance) Paused() bool {
	x.pauseMu.Lock()
	defer x.pauseMu.Unlock()
	return x.paused
}

// waitRunning blocks while paused.
func (x *Instance) waitRunning(ctx context.Context) error {
	x.pauseMu.Lock()
	paused, resumed := x.paused, x.resumed
	x.pauseMu.Unlock()
	if !paused {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-resumed:
		return nil
	}
}

// Collect takes what is ready, up to the batch limits, without waiting.
// While both queues hold records, session recordings get a quarter of the
// batch, so a backlog of either never starves the other.
//
// While paused it hands over nothing: Fluent Bit can still call it then
// (with several instances its pause stops another instance's timer), and
// what it took then would sit in a ring buffer that is not drained while
// paused, or be dropped at shutdown after the position moved past it.
//
// Nor does it hand over anything while the previous batch is not known to
// be in a chunk (see inflight.go): positions must not move past it; nor
// while a position cannot be saved: what it handed over would come again
// after a restart, and the longer the db fails, the more.
func (x *Instance) Collect() *emit.Batch {
	if x.Paused() || x.holding.Load() || x.standingBy() || !x.settle(false) {
		return &emit.Batch{}
	}
	maxRec, maxBytes := x.cfg.BatchMaxRecords, x.cfg.BatchMaxBytes
	b := x.sessions.Take(max(maxRec/4, 1), max(maxBytes/4, 1))
	x.audit.TakeInto(b, maxRec, maxBytes)
	x.sessions.TakeInto(b, maxRec, maxBytes)
	return b
}

// Commit moves the positions past a batch without records, or one Fluent
// Bit holds in a chunk.
func (x *Instance) Commit(b *emit.Batch) { x.commit(b, len(b.Records)) }

// commit moves the positions past a batch of n records. When the db fails,
// the positions wait, and are saved first, with the next batches', once it
// works again (Fluent Bit's collect keeps calling Commit with empty
// batches, which retry with backoff).
func (x *Instance) commit(b *emit.Batch, n int) {
	if n > 0 {
		x.stats.Records.Add(int64(n))
		x.stats.SessionRecords.Add(int64(b.SessionRecords))
		x.stats.Bytes.Add(int64(b.Size))
	}
	if b.Newest > x.stats.NewestSecond.Load() {
		x.stats.NewestSecond.Store(b.Newest)
	}
	sp := x.space.Load()
	if sp == nil {
		return
	}
	x.saveMu.Lock()
	defer x.saveMu.Unlock()
	marks, seen := b.Marks, b.Seen
	if u := x.unsaved; u != nil {
		if len(marks) == 0 && len(seen) == 0 && time.Now().Before(x.saveAfter) {
			return
		}
		marks, seen = slices.Concat(u.Marks, marks), slices.Concat(u.Seen, seen)
	}
	if len(marks) == 0 && len(seen) == 0 {
		return
	}
	if err := sp.Commit(marks, seen); err != nil {
		x.stats.Errors.Add(1)
		x.stats.Retries.Add(1)
		x.unsaved = &emit.Batch{Marks: marks, Seen: seen}
		x.holding.Store(true)
		delay := x.saveRetry.Next()
		x.saveAfter = time.Now().Add(delay)
		x.log.Errorf("cannot save the position in db %s: %v; no new events are handed over until it is saved, retrying in %s (check the free space and permissions of the db directory)",
			x.cfg.DB, err, delay.Round(100*time.Millisecond))
		return
	}
	if x.unsaved != nil {
		x.unsaved = nil
		x.holding.Store(false)
		x.saveRetry.Reset()
		x.log.Infof("saved the position in db %s again; the export goes on", x.cfg.DB)
	}
}

// encoder is one goroutine's record encoder and scratch buffer.
type encoder struct {
	enc     emit.Encoder
	scratch []byte
}

// sink puts the readers' output into one queue; safe for concurrent use
// (bulk chunks and recordings are read by several goroutines).
type sink struct {
	x       *Instance
	q       *emit.Queue
	session bool
	moved   *atomic.Bool // if set, set once anything is queued
}

func (s sink) put(ctx context.Context, it emit.Item) error {
	err := s.q.Put(ctx, it)
	if err == nil && s.moved != nil {
		s.moved.Store(true)
	}
	return err
}

func (s sink) Event(ctx context.Context, ev *teleportsrc.Event, after db.Mark) error {
	if err := s.x.waitRunning(ctx); err != nil {
		return err
	}
	e := s.x.encoders.Get().(*encoder)
	var rec []byte
	var err error
	if s.session {
		rec, err = e.enc.AppendSessionRecord(e.scratch[:0], ev.Seconds, ev.Nanos, ev.Body, ev.Session)
	} else {
		rec, err = e.enc.AppendRecord(e.scratch[:0], ev.Seconds, ev.Nanos, ev.Body)
	}
	e.scratch = rec
	var out []byte
	if err == nil {
		out = append([]byte(nil), rec...)
	}
	s.x.encoders.Put(e)
	var seen *db.Seen
	if ev.Remember {
		seen = &db.Seen{Second: ev.Seconds, UID: ev.ID}
	}
	if err != nil {
		// Never hand Fluent Bit a record that does not decode: one bad record
		// loses the rest of its chunk. This one can never succeed, so move on.
		s.x.stats.Errors.Add(1)
		s.x.log.Errorf("skipping event %s (%s): its body from Teleport is not valid protobuf: %v", ev.ID, ev.Type, err)
		return s.put(ctx, emit.Item{Mark: after, Seen: seen})
	}
	it := emit.Item{Rec: out, Mark: after, Seen: seen, Session: s.session}
	if !s.session {
		it.Time = ev.Seconds
	}
	return s.put(ctx, it)
}

func (s sink) Progress(ctx context.Context, at db.Mark) error {
	if err := s.x.waitRunning(ctx); err != nil {
		return err
	}
	return s.put(ctx, emit.Item{Mark: at})
}

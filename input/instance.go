// Package input runs one teleport input: a goroutine fetches audit events
// into a bounded queue, Fluent Bit's collect callback takes batches from it,
// and positions are committed once Fluent Bit has taken a batch.
package input

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/conf"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/cursor"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/emit"
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
}

// Retry delays: capped exponential backoff (variables so tests run fast).
var (
	retryMin = time.Second
	retryMax = 30 * time.Second
)

// Instance is one running teleport input.
type Instance struct {
	cfg   conf.Config
	name  string
	log   Logger
	dial  teleportsrc.Dialer
	now   func() time.Time
	store *cursor.Store
	queue *emit.Queue
	space atomic.Pointer[cursor.Space]

	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once

	pauseMu sync.Mutex
	paused  bool
	resumed chan struct{} // closed on Resume

	encoder emit.Encoder
	scratch []byte

	stats Stats
}

// Stats are the instance's counters, safe to read from any goroutine.
type Stats struct {
	Records   atomic.Int64 // handed to Fluent Bit
	Bytes     atomic.Int64
	Batches   atomic.Int64
	Retries   atomic.Int64
	Errors    atomic.Int64
	Connected atomic.Bool
	// NewestSecond is the newest event second handed over (unix seconds).
	NewestSecond atomic.Int64
}

// New opens the position store; it does not touch the network, so it is
// quick enough for Fluent Bit's Init. A store held by another process fails
// here with an error that says so.
func New(o Options) (*Instance, error) {
	if o.Dial == nil {
		o.Dial = teleportsrc.Dial
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	store, err := cursor.Open(o.Config.DB, o.Log)
	if err != nil {
		return nil, err
	}
	return &Instance{
		cfg: o.Config, name: o.Name, log: o.Log, dial: o.Dial, now: o.Now,
		store: store,
		queue: emit.NewQueue(o.Config.BatchMaxRecords, o.Config.BatchMaxBytes),
		done:  make(chan struct{}),
	}, nil
}

// Stats exposes the counters.
func (x *Instance) Stats() *Stats { return &x.stats }

// Start begins fetching in the background.
func (x *Instance) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	go func() {
		defer close(x.done)
		x.run(ctx)
	}()
}

// Stop ends fetching and releases the store, waiting at most timeout for the
// fetcher: Fluent Bit's shutdown and hot reload must not wait on the network.
// Events still queued are dropped; they were never committed, so the next
// start fetches them again.
func (x *Instance) Stop(timeout time.Duration) {
	x.stopOnce.Do(func() { x.stop(timeout) })
}

func (x *Instance) stop(timeout time.Duration) {
	if x.cancel != nil {
		x.cancel()
		select {
		case <-x.done:
		case <-time.After(timeout):
			x.log.Warnf("the fetcher did not stop within %s; leaving it to finish in the background", timeout)
		}
	}
	if err := x.store.Close(); err != nil {
		x.log.Warnf("closing db %s: %v", x.cfg.DB, err)
	}
}

// Pause stops fetching (Fluent Bit's backpressure); queued events stay.
func (x *Instance) Pause() {
	x.pauseMu.Lock()
	defer x.pauseMu.Unlock()
	if !x.paused {
		x.paused = true
		x.resumed = make(chan struct{})
	}
}

// Resume restarts fetching.
func (x *Instance) Resume() {
	x.pauseMu.Lock()
	defer x.pauseMu.Unlock()
	if x.paused {
		x.paused = false
		close(x.resumed)
	}
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
func (x *Instance) Collect() *emit.Batch {
	return x.queue.Take(x.cfg.BatchMaxRecords, x.cfg.BatchMaxBytes)
}

// Commit moves the positions past a batch Fluent Bit has taken.
func (x *Instance) Commit(b *emit.Batch) {
	if len(b.Records) > 0 {
		x.stats.Records.Add(int64(len(b.Records)))
		x.stats.Bytes.Add(int64(b.Size))
		x.stats.Batches.Add(1)
	}
	for _, m := range b.Marks {
		if p, ok := m.(teleportsrc.SearchPosition); ok {
			x.stats.NewestSecond.Store(p.From)
		}
	}
	sp := x.space.Load()
	if sp == nil || len(b.Marks) == 0 {
		return
	}
	if err := sp.Commit(b.Marks); err != nil {
		x.stats.Errors.Add(1)
		x.log.Errorf("cannot save the position in db %s: %v (events after the last saved position will be sent again after a restart)", x.cfg.DB, err)
	}
}

// Event implements teleportsrc.Sink: encode and queue one record.
func (x *Instance) Event(ctx context.Context, ev *teleportsrc.Event, after cursor.Mark) error {
	rec, err := x.encoder.AppendRecord(x.scratch[:0], ev.Seconds, ev.Nanos, ev.Body)
	x.scratch = rec
	if err != nil {
		// Never hand Fluent Bit a record that does not decode: one bad record
		// loses the rest of its chunk. This one can never succeed, so move on.
		x.stats.Errors.Add(1)
		x.log.Errorf("skipping event %s (%s): its body from Teleport is not valid protobuf: %v", ev.ID, ev.Type, err)
		return x.queue.Put(ctx, nil, after)
	}
	return x.queue.Put(ctx, append([]byte(nil), rec...), after)
}

// Progress implements teleportsrc.Sink.
func (x *Instance) Progress(ctx context.Context, at cursor.Mark) error {
	return x.queue.Put(ctx, nil, at)
}

func (x *Instance) run(ctx context.Context) {
	creds := teleportsrc.NewCredentials(x.cfg)
	retry := teleportsrc.Backoff{Min: retryMin, Max: retryMax}
	var search *teleportsrc.Search
	for ctx.Err() == nil {
		if x.waitRunning(ctx) != nil {
			return
		}
		err := x.session(ctx, creds, &search, &retry)
		x.stats.Connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		x.stats.Errors.Add(1)
		x.stats.Retries.Add(1)
		delay := retry.Next()
		x.log.Errorf("%v; retrying in %s", err, delay.Round(100*time.Millisecond))
		if teleportsrc.Sleep(ctx, delay) != nil {
			return
		}
	}
}

// session connects once and reads until an error.
func (x *Instance) session(ctx context.Context, creds *teleportsrc.Credentials, search **teleportsrc.Search, retry *teleportsrc.Backoff) error {
	if err := x.loadCredentials(creds); err != nil {
		return err
	}
	if err := creds.CheckValid(x.now()); err != nil {
		return err
	}
	clt, err := x.dial(ctx, x.cfg.Addr, creds, x.cfg.DialTimeout)
	if err != nil {
		return errors.New("cannot connect: " + teleportsrc.Explain(err, x.cfg.Addr, creds.Describe()))
	}
	defer clt.Close()
	ping, err := clt.Ping(ctx)
	if err != nil {
		return errors.New("cannot reach the Auth Service: " + teleportsrc.Explain(err, x.cfg.Addr, creds.Describe()))
	}
	if *search == nil {
		pos, err := x.openSpace(ping.ClusterName)
		if err != nil {
			return err
		}
		*search = teleportsrc.NewSearch(teleportsrc.SearchConfig{
			Window: x.cfg.WindowSize, PageSize: x.cfg.PageSize, Types: x.cfg.Types, Skip: x.cfg.SkipEventTypes,
		}, pos, x.now)
	} else if want := x.space.Load().Name(); want != ping.ClusterName+"/"+x.name {
		return fmt.Errorf("connected to cluster %q, but this input exports %q: restart Fluent Bit after changing clusters", ping.ClusterName, want)
	}
	x.stats.Connected.Store(true)
	x.log.Infof("connected to Teleport cluster %q (version %s) at %s with %s; exporting from %s",
		ping.ClusterName, ping.ServerVersion, x.cfg.Addr, creds.Describe(), (*search).Position().FromTime().Format(time.RFC3339))
	for {
		if err := x.waitRunning(ctx); err != nil {
			return err
		}
		if err := x.loadCredentials(creds); err != nil {
			x.log.Warnf("keeping the loaded credentials: %v", err)
		}
		idle, err := (*search).Step(ctx, clt, x)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errors.New("reading audit events failed: " + teleportsrc.Explain(err, x.cfg.Addr, creds.Describe()))
		}
		retry.Reset()
		if idle {
			if err := teleportsrc.Sleep(ctx, x.cfg.PollInterval); err != nil {
				return err
			}
		}
	}
}

// loadCredentials (re)reads the credential files if they changed.
func (x *Instance) loadCredentials(creds *teleportsrc.Credentials) error {
	loaded, warning, err := creds.Load()
	if err != nil {
		return err
	}
	if warning != "" {
		x.log.Warnf("%s", warning)
	}
	if loaded {
		if exp, ok := creds.Expiry(); ok {
			x.log.Infof("loaded %s (valid until %s)", creds.Describe(), exp.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// openSpace picks the key space of this cluster and instance and returns
// where to resume. The first start records its start position at once, so a
// restart before the first batch does not move it to a later "now".
func (x *Instance) openSpace(cluster string) (teleportsrc.SearchPosition, error) {
	sp := x.store.Space(cluster + "/" + x.name)
	raw, ok, err := sp.Get(teleportsrc.SearchKey)
	if err != nil {
		return teleportsrc.SearchPosition{}, fmt.Errorf("reading db %s: %w", x.cfg.DB, err)
	}
	if ok {
		pos, err := teleportsrc.ParseSearchPosition(raw)
		if err != nil {
			return pos, fmt.Errorf("db %s: %w; remove the key space by deleting the db directory, or set another alias", x.cfg.DB, err)
		}
		x.checkStartTime(sp)
		x.space.Store(sp)
		x.log.Infof("resuming from the position saved in db %s for %s", x.cfg.DB, sp.Name())
		return pos, nil
	}
	start := x.cfg.StartTime
	if start.IsZero() {
		start = x.now().UTC().Truncate(time.Second)
	}
	pos := teleportsrc.SearchPosition{From: start.Unix()}
	if err := sp.Set(startTimeKey, []byte(start.Format(time.RFC3339))); err != nil {
		return pos, fmt.Errorf("writing db %s: %w", x.cfg.DB, err)
	}
	if err := sp.Commit([]cursor.Mark{pos}); err != nil {
		return pos, fmt.Errorf("writing db %s: %w", x.cfg.DB, err)
	}
	x.space.Store(sp)
	x.log.Infof("no saved position for %s in db %s: starting at %s", sp.Name(), x.cfg.DB, start.Format(time.RFC3339))
	return pos, nil
}

const startTimeKey = "start_time"

func (x *Instance) checkStartTime(sp *cursor.Space) {
	if x.cfg.StartTime.IsZero() {
		return
	}
	stored, _, _ := sp.Get(startTimeKey)
	if string(stored) != x.cfg.StartTime.Format(time.RFC3339) {
		x.log.Warnf("start_time %s is ignored: db %s already holds a position for %s (started at %s); to export from start_time instead, stop Fluent Bit and delete the db directory, or give this input another alias",
			x.cfg.StartTime.Format(time.RFC3339), x.cfg.DB, sp.Name(), stored)
	}
}

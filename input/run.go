package input

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/conf"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
)

const (
	credentialCheck = 5 * time.Second  // how often identity files are checked for renewal
	expiryWarning   = 15 * time.Minute // an identity this close to expiry is not being renewed
)

// readers is what the instance built once it knew the cluster: they outlive
// connections, so a reconnect resumes where they stood.
type readers struct {
	cluster  string
	search   *teleportsrc.Search
	bulk     *teleportsrc.Bulk
	sessions *teleportsrc.Sessions

	// What the search publishes after each step, for other goroutines (the
	// search itself is not safe for concurrent use): its position's From
	// (unix seconds) and whether it has caught up with now.
	searchFrom atomic.Int64
	searchIdle atomic.Bool
}

// caughtUp reports whether the audit reader has read up to now.
func (r *readers) caughtUp() bool {
	if r.bulk != nil {
		return r.bulk.CaughtUp()
	}
	return r.searchIdle.Load()
}

// mode is the export mode the readers were built for.
func (r *readers) mode() string {
	if r.bulk != nil {
		return conf.ModeBulk
	}
	return conf.ModeSearch
}

func (x *Instance) run(ctx context.Context) {
	creds := teleportsrc.NewCredentials(credentialFiles(x.cfg))
	retry := teleportsrc.Backoff{Min: x.timing.RetryMin, Max: x.timing.RetryMax}
	for ctx.Err() == nil {
		if x.waitRunning(ctx) != nil {
			return
		}
		err := x.connection(ctx, creds, &retry)
		x.stats.Connected.Store(false)
		if ctx.Err() != nil {
			return
		}
		if x.handleBlocked(err) {
			if teleportsrc.Sleep(ctx, x.timing.BlockedRetry) != nil {
				return
			}
			continue
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

// connection connects once and exports until an error.
func (x *Instance) connection(ctx context.Context, creds *teleportsrc.Credentials, retry *teleportsrc.Backoff) error {
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
	r := x.readers.Load() // stored here only, once
	if r == nil {
		built, err := x.prepare(ctx, clt, ping.ClusterName)
		if err != nil {
			return err
		}
		r = built
		x.readers.Store(r)
	} else if r.cluster != ping.ClusterName {
		return blocked("connected to cluster %q at %s, but this input exports cluster %q: point addr and the identity back at %q, or restart Fluent Bit to export %q (its position is kept apart)",
			ping.ClusterName, x.cfg.Addr, r.cluster, r.cluster, ping.ClusterName)
	}
	x.unblocked()
	x.stats.Connected.Store(true)
	x.log.Infof("connected to Teleport cluster %q (version %s) at %s with %s", ping.ClusterName, ping.ServerVersion, x.cfg.Addr, creds.Describe())

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel() // before waiting: the goroutines stop on it
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		x.housekeeping(ctx, creds, r)
	}()
	if s := r.sessions; s != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.Run(ctx, clt, sink{x: x, q: x.sessions, session: true})
		}()
	}
	err = x.readAudit(ctx, clt, r, retry)
	if ctx.Err() != nil && err != nil {
		return ctx.Err()
	}
	if ie := (indexError{}); errors.As(err, &ie) {
		// The reader asks again after the delay, from where it stood.
		return fmt.Errorf("cannot read the delivered-event index in db %s: %v (check the db directory's disk and permissions); the export waits for it rather than send events twice",
			x.cfg.DB, ie.err)
	}
	return errors.New("reading audit events failed: " + teleportsrc.Explain(err, x.cfg.Addr, creds.Describe()))
}

// readAudit runs the audit reader of the chosen mode until an error.
func (x *Instance) readAudit(ctx context.Context, clt teleportsrc.Client, r *readers, retry *teleportsrc.Backoff) error {
	out := sink{x: x, q: x.audit}
	if r.bulk != nil {
		// The backoff starts over only after an export that got somewhere
		// or lasted: one that fails right after connecting (access denied,
		// a failing chunk) must not reconnect at the shortest delay forever.
		var moved atomic.Bool
		out.moved = &moved
		began := time.Now()
		err := r.bulk.Run(ctx, clt, out)
		if moved.Load() || time.Since(began) >= x.timing.RetryMax {
			retry.Reset()
		}
		return err
	}
	for {
		if err := x.waitRunning(ctx); err != nil {
			return err
		}
		idle, err := r.search.Step(ctx, clt, out)
		r.searchFrom.Store(r.search.Position().From)
		if err != nil {
			return err
		}
		r.searchIdle.Store(idle)
		retry.Reset()
		if idle {
			if err := teleportsrc.Sleep(ctx, x.cfg.PollInterval); err != nil {
				return err
			}
		}
	}
}

// housekeeping picks up renewed credentials and trims the index.
func (x *Instance) housekeeping(ctx context.Context, creds *teleportsrc.Credentials, r *readers) {
	check := time.NewTicker(credentialCheck)
	defer check.Stop()
	prune := time.NewTicker(x.timing.PruneEvery)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-check.C:
			if err := x.loadCredentials(creds); err != nil {
				x.log.Warnf("keeping the loaded credentials: %v", err)
			}
		case <-prune.C:
			x.pruneIndex(r)
		}
	}
}

// pruneIndex drops index entries nothing will ask about any more: in
// search mode those older than the re-scan reaches, in bulk mode those of
// finished dates.
func (x *Instance) pruneIndex(r *readers) {
	sp := x.space.Load()
	if sp == nil {
		return
	}
	var before string
	if r.bulk != nil {
		before = r.bulk.OldestOpenDate()
	} else {
		oldest := time.Unix(r.searchFrom.Load(), 0).UTC().Add(-2*x.cfg.SettlePeriod - 24*time.Hour)
		before = oldest.Format(time.DateOnly)
	}
	n, err := sp.PruneSeen(before)
	if err != nil {
		x.log.Warnf("trimming the delivered-event index in db %s: %v", x.cfg.DB, err)
		return
	}
	if n > 0 {
		x.log.Debugf("trimmed %d entries of the delivered-event index (dates before %s)", n, before)
	}
}

// credentialFiles are the credentials the settings name.
func credentialFiles(c conf.Config) teleportsrc.CredentialFiles {
	return teleportsrc.CredentialFiles{Identity: c.IdentityFile, Cert: c.CertFile, Key: c.KeyFile, CA: c.CAFile}
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
	exp, ok := creds.Expiry()
	if !ok {
		return nil
	}
	if loaded {
		x.stats.IdentityExpiry.Store(exp.Unix())
		x.log.Infof("loaded %s (valid until %s)", creds.Describe(), exp.UTC().Format(time.RFC3339))
	}
	// Once per identity: tbot renews long before this.
	if left := exp.Sub(x.now()); left > 0 && left < expiryWarning && x.expiryWarned.Swap(exp.Unix()) != exp.Unix() {
		x.log.Warnf("%s expires at %s (in %s) and has not been renewed: check tbot, or issue a new one with `tctl auth sign`",
			creds.Describe(), exp.UTC().Format(time.RFC3339), left.Round(time.Second))
	}
	return nil
}

// prepare opens the cluster's key space, chooses the export mode (switching
// from the mode saved there without repeating or losing events) and builds
// the readers.
func (x *Instance) prepare(ctx context.Context, clt teleportsrc.Client, cluster string) (*readers, error) {
	sp := x.db.Space(cluster + "/" + x.name)
	st, err := loadState(sp)
	if err != nil {
		return nil, fmt.Errorf("reading db %s: %w; to start over, stop Fluent Bit and delete the db directory, or give this input another alias", x.cfg.DB, err)
	}
	start := x.startTime(sp, st)

	mode := x.cfg.ExportMode
	if mode == conf.ModeAuto {
		bulk, err := teleportsrc.ProbeBulk(ctx, clt, x.now())
		if err != nil {
			return nil, errors.New("cannot tell whether the cluster supports bulk export: " + teleportsrc.Explain(err, x.cfg.Addr, "the credentials"))
		}
		mode = conf.ModeSearch
		if bulk {
			mode = conf.ModeBulk
		}
		x.log.Infof("export_mode auto: the cluster %s bulk export, so the plugin uses %s", map[bool]string{true: "supports", false: "has no"}[bulk], mode)
	} else if mode == conf.ModeBulk {
		if ok, err := teleportsrc.ProbeBulk(ctx, clt, x.now()); err == nil && !ok {
			return nil, blocked("export_mode is bulk, but Teleport at %s has no bulk export (only the Athena audit backend of Teleport Cloud and external audit storage have it): set export_mode to auto or search", x.cfg.Addr)
		}
	}

	start, startTail, err := x.startAfter(ctx, clt, sp, st, start)
	if err != nil {
		return nil, err
	}

	r := &readers{cluster: cluster}
	idx := newIndex(sp)
	watch := func(*teleportsrc.Event) {}
	if x.cfg.Sessions {
		r.sessions = teleportsrc.NewSessions(teleportsrc.SessionConfig{
			Concurrency: x.cfg.SessionConcurrency, Skip: x.cfg.SkipSessionTypes,
			RetryMin: x.timing.SessionRetryMin, RetryMax: x.timing.SessionRetryMax,
			Save: func(p teleportsrc.SessionPosition) error { return sp.Commit([]db.Mark{p}, nil) },
			Logf: x.log.Infof,
		}, st.sessions, x.now)
		watch = r.sessions.Watch
	}
	switch mode {
	case conf.ModeSearch:
		pos, err := x.searchStart(sp, st, start, startTail)
		if err != nil {
			return nil, err
		}
		types, skip := x.searchTypes()
		r.search = teleportsrc.NewSearch(teleportsrc.SearchConfig{
			Window: x.cfg.WindowSize, PageSize: x.cfg.PageSize, Concurrency: x.cfg.SearchConcurrency, Types: types, Skip: skip,
			Settle: x.cfg.SettlePeriod, Index: idx, Watch: watch, Logf: x.log.Infof, Warnf: x.log.Warnf,
		}, pos, x.now)
		r.searchFrom.Store(pos.From)
	case conf.ModeBulk:
		after, bulkState, err := x.bulkStart(sp, st)
		if err != nil {
			return nil, err
		}
		r.bulk = teleportsrc.NewBulk(teleportsrc.BulkConfig{
			Start: start, StartTail: startTail, Concurrency: x.cfg.ExportConcurrency, Types: x.cfg.Types, Skip: x.cfg.SkipEventTypes,
			Poll: x.cfg.PollInterval, PollMin: x.timing.BulkPollMin,
			After: after, Settle: x.cfg.SettlePeriod, Index: idx, Watch: watch, Logf: x.log.Infof,
		}, bulkState, x.now)
	}
	if err := sp.Set(modeKey, []byte(mode)); err != nil {
		return nil, fmt.Errorf("writing db %s: %w", x.cfg.DB, err)
	}
	x.space.Store(sp)
	return r, nil
}

// searchTypes is what the search asks the server for and what it leaves
// out: with sessions on and a types list without session.upload, it asks for
// session.upload too, to find recordings, without exporting it.
func (x *Instance) searchTypes() (types, skip []string) {
	types, skip = x.cfg.Types, x.cfg.SkipEventTypes
	if !x.cfg.Sessions || len(types) == 0 {
		return types, skip
	}
	for _, t := range types {
		if t == sessionUpload {
			return types, skip
		}
	}
	x.log.Infof("types does not list session.upload: searching for it anyway to find session recordings, without exporting it")
	return append(append([]string(nil), types...), sessionUpload), append(append([]string(nil), skip...), sessionUpload)
}

const sessionUpload = "session.upload"

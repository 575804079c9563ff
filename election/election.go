// Package election chooses one active exporter among the pods that run the
// same teleport input: client-go's leader election on a coordination.k8s.io/v1
// Lease, with a term that ends on the elector's own clock as soon as the
// lease could not be renewed within the renew deadline.
package election

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// Logger writes the elector's log lines.
type Logger interface {
	Warnf(format string, args ...any)
	Infof(format string, args ...any)
}

// Config names the Lease and its timing.
type Config struct {
	Client    coordinationv1.CoordinationV1Interface
	Namespace string
	Name      string // of the Lease
	Identity  string // this candidate, unique among them
	// LeaseDuration is how long others wait after the last renewal before
	// taking over; RenewDeadline how long the holder keeps trying to renew
	// before it stops (less than LeaseDuration); RetryPeriod the pause
	// between attempts.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Log                                       Logger
}

// Elector competes for one Lease. Its methods are safe for concurrent use.
type Elector struct {
	cfg  Config
	lock *timedLock

	leader      atomic.Bool
	holder      atomic.Pointer[string]
	transitions atomic.Int64
}

// New checks the timing and builds the elector; it does not touch the
// network.
func New(cfg Config) (*Elector, error) {
	if cfg.RenewDeadline >= cfg.LeaseDuration || cfg.RetryPeriod >= cfg.RenewDeadline {
		return nil, fmt.Errorf("lease timing: retry period %s < renew deadline %s < lease duration %s is required", cfg.RetryPeriod, cfg.RenewDeadline, cfg.LeaseDuration)
	}
	quietKlog()
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
		Client:     cfg.Client,
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	e := &Elector{cfg: cfg, lock: &timedLock{LeaseLock: lock, log: cfg.Log}}
	empty := ""
	e.holder.Store(&empty)
	return e, nil
}

var klogOnce sync.Once

// quietKlog keeps client-go's own log lines off Fluent Bit's stderr: the
// elector logs what matters through the plugin's logger.
func quietKlog() { klogOnce.Do(func() { klog.SetLogger(logr.Discard()) }) }

// Leader reports whether this candidate holds the lease now.
func (e *Elector) Leader() bool { return e.leader.Load() }

// Holder is the identity of the holder last seen ("" if none yet).
func (e *Elector) Holder() string { return *e.holder.Load() }

// Transitions counts this candidate's gains and losses of the lease.
func (e *Elector) Transitions() int64 { return e.transitions.Load() }

// Describe names the Lease, for log lines.
func (e *Elector) Describe() string { return e.cfg.Namespace + "/" + e.cfg.Name }

// Run competes for the lease until ctx is done. For each term it calls lead
// with a context that ends with the term, and waits for lead to return.
// A term ends when ctx is done, when another candidate holds the lease, or
// when a renewal has not succeeded for RenewDeadline: then lead's context is
// cancelled at once by this elector's clock, whatever the API calls still
// in flight do. At the end, after lead has returned, a held lease is
// released so that a successor need not wait for it to expire.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) {
	for ctx.Err() == nil {
		began := time.Now()
		ended := make(chan struct{})
		// A lead that returns on its own ends the term too: stop renewing.
		runCtx, stopRun := context.WithCancel(ctx)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          e.lock,
			LeaseDuration: e.cfg.LeaseDuration,
			RenewDeadline: e.cfg.RenewDeadline,
			RetryPeriod:   e.cfg.RetryPeriod,
			Name:          e.Describe(),
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(termCtx context.Context) {
					defer close(ended)
					defer stopRun()
					e.lead(ctx, termCtx, lead)
				},
				OnStoppedLeading: func() {},
				OnNewLeader: func(id string) {
					e.holder.Store(&id)
					if id != e.cfg.Identity {
						e.cfg.Log.Infof("lease %s is held by %s: standing by", e.Describe(), id)
					}
				},
			},
		})
		if err != nil { // only a bad config, which New checked
			stopRun()
			e.cfg.Log.Warnf("lease %s: %v", e.Describe(), err)
			return
		}
		le.Run(runCtx)
		// OnStartedLeading runs on a goroutine of its own, which Run starts
		// right after a write of this candidate's record succeeded, and does
		// not wait for.
		if !e.lock.lastRenewed().Before(began) {
			<-ended
			e.release()
		}
		stopRun()
	}
}

func (e *Elector) lead(outer, parent context.Context, lead func(context.Context)) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	e.leader.Store(true)
	e.transitions.Add(1)
	id := e.cfg.Identity
	e.holder.Store(&id)
	e.cfg.Log.Infof("became the leader of lease %s: exporting", e.Describe())
	watchdog := make(chan struct{})
	go func() {
		defer close(watchdog)
		e.watch(ctx, cancel)
	}()
	lead(ctx)
	cancel(nil)
	<-watchdog
	e.leader.Store(false)
	e.transitions.Add(1)
	why := "the input stops"
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errNotRenewed):
		why = cause.Error()
	case e.lock.lostTo() != "":
		why = "the lease is held by " + e.lock.lostTo()
	case outer.Err() == nil:
		why = "the lease could not be renewed"
	}
	e.cfg.Log.Infof("stopped leading lease %s (%s): export stopped", e.Describe(), why)
}

// errNotRenewed ends a term whose lease was not renewed in time.
var errNotRenewed = errors.New("renew deadline passed")

// watch ends the term once RenewDeadline has passed since the last
// successful renewal was sent: from then on another candidate may take
// the lease as soon as it has expired.
func (e *Elector) watch(ctx context.Context, cancel context.CancelCauseFunc) {
	for {
		last := e.lock.lastRenewed()
		wait := time.Until(last.Add(e.cfg.RenewDeadline))
		if wait <= 0 {
			cancel(fmt.Errorf("%w: the lease was last renewed %s ago (renew deadline %s); is the API server reachable?",
				errNotRenewed, time.Since(last).Round(100*time.Millisecond), e.cfg.RenewDeadline))
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// releaseTimeout bounds the release: a stopping Fluent Bit must not wait
// on an API server that does not answer (the lease then expires).
const releaseTimeout = 2 * time.Second

// release gives the lease up if this candidate still holds it.
func (e *Elector) release() {
	ctx, cancel := context.WithTimeout(context.Background(), min(e.cfg.RenewDeadline, releaseTimeout))
	defer cancel()
	for ctx.Err() == nil {
		rec, _, err := e.lock.Get(ctx)
		if err != nil || rec.HolderIdentity != e.cfg.Identity {
			return
		}
		now := metav1.Now()
		err = e.lock.LeaseLock.Update(ctx, resourcelock.LeaderElectionRecord{
			LeaderTransitions: rec.LeaderTransitions, LeaseDurationSeconds: 1, RenewTime: now, AcquireTime: now,
		})
		if err == nil {
			e.cfg.Log.Infof("released lease %s", e.Describe())
			return
		}
		if !apierrors.IsConflict(err) {
			e.cfg.Log.Warnf("releasing lease %s: %v (a successor takes over once it expires)", e.Describe(), err)
			return
		}
	}
}

// timedLock is the Lease lock that notes when a write of this candidate's
// own record was sent and succeeded: the renewal clock of the term.
type timedLock struct {
	*resourcelock.LeaseLock
	log Logger

	mu      sync.Mutex
	renewed time.Time
	other   string // holder seen when this candidate was not it
	failing bool
}

func (l *timedLock) wrote(sent time.Time, rec resourcelock.LeaderElectionRecord, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		if !l.failing {
			l.log.Warnf("cannot write lease %s/%s: %v (retrying)", l.LeaseMeta.Namespace, l.LeaseMeta.Name, err)
		}
		l.failing = true
		return
	}
	l.failing = false
	if rec.HolderIdentity == l.Identity() {
		l.renewed = sent
		l.other = ""
	}
}

func (l *timedLock) lastRenewed() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewed
}

func (l *timedLock) lostTo() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.other
}

// Get notes another holder.
func (l *timedLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := l.LeaseLock.Get(ctx)
	if err == nil && rec.HolderIdentity != "" && rec.HolderIdentity != l.Identity() {
		l.mu.Lock()
		l.other = rec.HolderIdentity
		l.mu.Unlock()
	}
	return rec, raw, err
}

// Create implements resourcelock.Interface.
func (l *timedLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	sent := time.Now()
	err := l.LeaseLock.Create(ctx, rec)
	l.wrote(sent, rec, err)
	return err
}

// Update implements resourcelock.Interface.
func (l *timedLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	sent := time.Now()
	err := l.LeaseLock.Update(ctx, rec)
	l.wrote(sent, rec, err)
	return err
}

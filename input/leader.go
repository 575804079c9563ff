package input

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/conf"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/election"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/handover"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/metrics"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
)

// leadership is what an instance with leader_election kubernetes adds: the
// elector, the keeper of the handed-over position, and whether this pod is
// exporting now.
type leadership struct {
	elector   *election.Elector
	keeper    *handover.Keeper
	identity  string
	lease     string
	exporting atomic.Bool
	savedHash [sha256.Size]byte // of the state saved last, to skip unchanged saves
	warnedBig atomic.Bool
}

// versionKey keeps, in the local db, the resourceVersion of the ConfigMap
// this pod last wrote or read the state at: when the ConfigMap still has
// it, nobody exported since, and the local db is at least as new.
const versionKey = "version"

// saveTimeout bounds the save at the end of a term: a stop must not wait
// on an API server that does not answer.
const saveTimeout = 2 * time.Second

// Identity is this candidate's name in the Lease and in log lines: the pod
// and node from the downward API (POD_NAME, NODE_NAME), else the host name.
func Identity() string {
	pod := os.Getenv("POD_NAME")
	if pod == "" {
		pod, _ = os.Hostname()
	}
	if node := os.Getenv("NODE_NAME"); node != "" {
		return pod + "@" + node
	}
	return pod
}

// newLeadership builds the Kubernetes client and the elector when leader
// election is on (nil when off), and puts the candidate's identity in front
// of o.Log's lines. It does not touch the network.
func newLeadership(o *Options) (*leadership, error) {
	e := o.Config.Election
	if !e.Kubernetes {
		return nil, nil
	}
	leases, configMaps, namespace, err := kubeClients(e)
	if err != nil {
		return nil, err
	}
	lease := e.LeaseName
	if lease == "" {
		lease = LeaseName(o.Config.Addr, o.Name)
	}
	id := Identity()
	o.Log = prefixed{Logger: o.Log, prefix: id + ": "}
	el, err := election.New(election.Config{Client: leases, Namespace: namespace, Name: lease, Identity: id,
		LeaseDuration: e.LeaseDuration, RenewDeadline: e.RenewDeadline, RetryPeriod: e.RetryPeriod, Log: o.Log})
	if err != nil {
		return nil, err
	}
	return &leadership{elector: el, keeper: handover.New(configMaps, namespace, lease, id), identity: id, lease: lease}, nil
}

// kubeClients connects from the kubeconfig setting, else from the pod's
// service account, and finds the Lease's namespace. Only the two API groups
// used are built (the whole clientset adds 10 MB to the .so).
func kubeClients(e conf.Election) (coordinationv1.CoordinationV1Interface, corev1.CoreV1Interface, string, error) {
	var rc *rest.Config
	namespace := e.LeaseNamespace
	if e.Kubeconfig != "" {
		loaded := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: e.Kubeconfig}, nil)
		var err error
		if rc, err = loaded.ClientConfig(); err != nil {
			return nil, nil, "", fmt.Errorf("setting \"kubeconfig\" = %q: %v; accepted: a readable kubeconfig file", e.Kubeconfig, err)
		}
		if namespace == "" {
			if namespace, _, err = loaded.Namespace(); err != nil || namespace == "" {
				namespace = "default"
			}
		}
	} else {
		var err error
		if rc, err = rest.InClusterConfig(); err != nil {
			return nil, nil, "", fmt.Errorf("leader_election kubernetes: %v; outside a Kubernetes pod, set kubeconfig", err)
		}
		if namespace == "" {
			b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
			if err != nil {
				return nil, nil, "", fmt.Errorf("leader_election kubernetes: cannot read the pod's namespace (%v): set lease_namespace", err)
			}
			namespace = strings.TrimSpace(string(b))
		}
	}
	rc.Timeout = 10 * time.Second // a call that hangs must not outlive a renew deadline by much
	rc.UserAgent = "fluent-bit-teleport"
	leases, err := coordinationv1.NewForConfig(rc)
	if err != nil {
		return nil, nil, "", fmt.Errorf("leader_election kubernetes: %w", err)
	}
	configMaps, err := corev1.NewForConfig(rc)
	if err != nil {
		return nil, nil, "", fmt.Errorf("leader_election kubernetes: %w", err)
	}
	return leases, configMaps, namespace, nil
}

// LeaseName is the default Lease (and ConfigMap) name of an input: from
// the host of addr (the Teleport cluster) and the input's alias or name, so
// that two inputs for two clusters in one DaemonSet use two Leases.
func LeaseName(addr, input string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	name := "fluent-bit-teleport-" + objectName(host) + "-" + objectName(input)
	if len(name) > 253 {
		name = name[:253]
	}
	return strings.TrimRight(name, "-.")
}

func objectName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-.")
}

// prefixed puts the candidate's identity in front of every log line.
type prefixed struct {
	Logger
	prefix string
}

func (p prefixed) Errorf(f string, a ...any) { p.Logger.Errorf(p.prefix+f, a...) }
func (p prefixed) Warnf(f string, a ...any)  { p.Logger.Warnf(p.prefix+f, a...) }
func (p prefixed) Infof(f string, a ...any)  { p.Logger.Infof(p.prefix+f, a...) }
func (p prefixed) Debugf(f string, a ...any) { p.Logger.Debugf(p.prefix+f, a...) }

// export runs the input: at once without leader election, else in each
// term this pod holds the Lease.
func (x *Instance) export(ctx context.Context) {
	if x.lead == nil {
		x.run(ctx)
		return
	}
	x.log.Infof("competing for lease %s as %s (the holder exports; the others stand by)", x.lead.elector.Describe(), x.lead.identity)
	x.lead.elector.Run(ctx, func(term context.Context) { x.term(ctx, term) })
}

// standingBy reports whether this pod may not hand anything to Fluent Bit:
// leader election is on and this pod is not exporting.
func (x *Instance) standingBy() bool { return x.lead != nil && !x.lead.exporting.Load() }

// term exports while this pod holds the Lease: it continues from the
// handed-over state (or the local db where that is newer), saves the
// position every handover_interval, and at the end drops what Fluent Bit has
// not taken and saves once more.
func (x *Instance) term(input, term context.Context) {
	// The readers are rebuilt from the state: another pod may have moved on.
	x.readers.Store(nil)
	x.space.Store(nil)
	if !x.takeOver(term) {
		return
	}
	ctx, stop := context.WithCancel(term)
	defer stop()
	x.lead.exporting.Store(true)
	saved := make(chan struct{})
	go func() {
		defer close(saved)
		x.saveLoop(ctx, stop)
	}()
	x.run(ctx)
	stop()
	<-saved
	x.lead.exporting.Store(false)
	x.audit.Take(math.MaxInt, math.MaxInt) // never taken, never committed: the successor reads them again
	x.sessions.Take(math.MaxInt, math.MaxInt)
	// Fluent Bit takes what it holds to its outputs as it stops: a state
	// saved at that point needs no replay by the successor.
	clean := input.Err() != nil
	sctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	if err := x.saveState(sctx, clean, true); err != nil {
		x.log.Warnf("saving the position to %s at the end of the term: %v (the successor continues from the last save)", x.lead.keeper.Describe(), err)
	}
}

// takeOver claims the handed-over state, retrying until the term ends.
func (x *Instance) takeOver(ctx context.Context) bool {
	retry := teleportsrc.Backoff{Min: retryMin, Max: retryMax}
	for {
		st, prev, version, err := x.lead.keeper.Claim(ctx)
		if err == nil {
			err = x.restore(st, prev, version)
			if err == nil {
				return true
			}
		}
		if ctx.Err() != nil {
			return false
		}
		x.stats.Errors.Add(1)
		delay := retry.Next()
		x.log.Errorf("taking over the position: %v; check that the Role allows get, create and update on configmaps; retrying in %s", err, delay.Round(100*time.Millisecond))
		if teleportsrc.Sleep(ctx, delay) != nil {
			return false
		}
	}
}

// meta is the local db's record of the handed-over state.
func (x *Instance) meta() *db.Space { return x.db.Space("handover/" + x.lead.lease) }

// restore copies the handed-over state into the local db unless the local
// db is as new, and applies the replay margin after a holder that did not
// stop cleanly.
func (x *Instance) restore(st *handover.State, prev, version string) error {
	meta := x.meta()
	local, _, err := meta.Get(versionKey)
	if err != nil {
		return fmt.Errorf("reading db %s: %w", x.cfg.DB, err)
	}
	switch {
	case st == nil:
		x.log.Infof("%s holds no position yet: starting from db %s", x.lead.keeper.Describe(), x.cfg.DB)
	case prev == string(local):
		x.log.Infof("db %s holds the newest position (this pod saved it last): continuing from it", x.cfg.DB)
	default:
		sp := x.db.Space(st.Space)
		if err := sp.Replace(st.Pairs); err != nil {
			return fmt.Errorf("writing db %s: %w", x.cfg.DB, err)
		}
		how := "stopped cleanly"
		if !st.Clean {
			how = "did not stop cleanly"
			if err := x.replay(sp); err != nil {
				return err
			}
		}
		x.log.Infof("continuing from the position %s handed over (saved %s ago; it %s)", st.Holder, x.now().Sub(st.Saved).Round(time.Millisecond), how)
	}
	if err := meta.Set(versionKey, []byte(version)); err != nil {
		return fmt.Errorf("writing db %s: %w", x.cfg.DB, err)
	}
	return nil
}

// replay moves the search position back by replay_margin: what the dead
// holder's Fluent Bit took in that span may have died with it, and sinks
// that drop duplicates by uid lose nothing by reading it again.
func (x *Instance) replay(sp *db.Space) error {
	margin := x.cfg.Election.ReplayMargin
	raw, ok, err := sp.Get(teleportsrc.SearchKey)
	if err != nil || !ok || margin <= 0 {
		return err
	}
	pos, err := teleportsrc.ParseSearchPosition(raw)
	if err != nil {
		return err
	}
	pos = teleportsrc.SearchPosition{From: pos.From - int64(margin/time.Second), CheckUntil: pos.CheckUntil}
	x.log.Infof("replay_margin %s: reading again from %s", margin, pos.FromTime().Format(time.RFC3339))
	return sp.Commit([]db.Mark{pos}, nil)
}

// saveLoop saves the position every handover_interval; a fenced save ends
// the term: another pod wrote the state, so this one is not the exporter.
func (x *Instance) saveLoop(ctx context.Context, stop context.CancelFunc) {
	t := time.NewTicker(x.cfg.Election.HandoverInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := x.saveState(ctx, false, false)
		if errors.Is(err, handover.ErrFenced) {
			x.log.Errorf("stopping the export: %v", err)
			stop()
			return
		}
		if err != nil && ctx.Err() == nil {
			x.stats.Errors.Add(1)
			x.log.Warnf("saving the position to %s: %v (retrying in %s)", x.lead.keeper.Describe(), err, x.cfg.Election.HandoverInterval)
		}
	}
}

// saveState saves the committed positions of the local db, unless they
// are what was saved last (always when final).
func (x *Instance) saveState(ctx context.Context, clean, final bool) error {
	sp := x.space.Load()
	if sp == nil {
		return nil // not connected yet this term: the ConfigMap keeps what it holds
	}
	pairs, err := handover.Snapshot(sp, x.now(), x.cfg.SettlePeriod)
	if err != nil {
		return fmt.Errorf("reading db %s: %w", x.cfg.DB, err)
	}
	h := sha256.New()
	for _, p := range pairs {
		h.Write([]byte(p.Key))
		h.Write([]byte{0})
		h.Write(p.Val)
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if !final && bytes.Equal(sum[:], x.lead.savedHash[:]) {
		return nil
	}
	version, leftOut, err := x.lead.keeper.Save(ctx, handover.State{Space: sp.Name(), Pairs: pairs, Saved: x.now(), Clean: clean})
	if err != nil {
		return err
	}
	x.lead.savedHash = sum
	if leftOut && !x.lead.warnedBig.Swap(true) {
		x.log.Warnf("the delivered-event index is too large for %s: saved the positions without it (after a takeover, late events may be sent twice)", x.lead.keeper.Describe())
	}
	return x.meta().Set(versionKey, []byte(version))
}

// leaderSnapshot adds the election state to a snapshot.
func (x *Instance) leaderSnapshot(s *metrics.Snapshot) {
	if x.lead == nil {
		return
	}
	s.Election = true
	s.Leader = x.lead.exporting.Load()
	s.Identity = x.lead.identity
	s.Holder = x.lead.elector.Holder()
	s.LeaderTransitions = x.lead.elector.Transitions()
}

// Package failover runs the plugin as three "pods" of a DaemonSet (three
// tests/host processes) with leader_election kubernetes against a real
// kube-apiserver, while the Teleport test double emits live events. It
// SIGKILLs the leader three times, cuts the next one off the API server,
// and stops the last one cleanly; then it checks that no event is missing,
// that two pods never handed records to Fluent Bit at the same time, and
// that duplicates stay within the bound, and reports the takeover times.
package failover

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/kubeapi"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

const (
	ns    = "fluent-bit-teleport"
	lease = "teleport-failover"
	// Scaled-down lease timing (the defaults are 15s, 10s, 2s).
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
	handoverEvery = 2 * time.Second
	replayMargin  = 2 * time.Second
	eventsPerSec  = 50
	collectEvery  = 50 * time.Millisecond // Fluent Bit's collect interval here
)

// pod is one Fluent Bit of the DaemonSet.
type pod struct {
	name  string
	host  *flbhost.Host
	proxy *kubeapi.Proxy
	done  chan struct{}
}

// moment is when a pod handed records to Fluent Bit.
type moment struct {
	at  time.Time
	pod string
	n   int
}

type world struct {
	t        *testing.T
	kube     *kubeapi.Cluster
	fake     *teleportfake.Server
	identity string
	start    time.Time
	so       string

	mu      sync.Mutex
	moments []moment
	pods    []*pod
	seq     int
}

func (w *world) startPod(t *testing.T) *pod {
	w.seq++
	name := fmt.Sprintf("pod-%d", w.seq)
	p := &pod{name: name, proxy: w.kube.Proxy(t), done: make(chan struct{})}
	dir := t.TempDir()
	p.host = flbhost.Start(t, w.so, flbhost.Options{Env: []string{"POD_NAME=" + name},
		RecordsPath: filepath.Join(dir, "records.bin"), LogPath: filepath.Join(dir, "plugin.log")})
	_, err := p.host.Init(map[string]string{
		"addr": w.fake.Addr(), "identity_file": w.identity, "db": filepath.Join(dir, "db"),
		"start_time": w.start.Format(time.RFC3339), "poll_interval": "100ms", "dial_timeout": "5s", "status_interval": "off",
		"leader_election": "kubernetes", "lease_name": lease,
		"kubeconfig":     w.kube.Kubeconfig(t, p.proxy.URL, kubeapi.PluginToken, ns),
		"lease_duration": leaseDuration.String(), "renew_deadline": renewDeadline.String(), "retry_period": retryPeriod.String(),
		"handover_interval": handoverEvery.String(), "replay_margin": replayMargin.String(),
	})
	require.NoError(t, err, "init %s; plugin log:\n%s", name, p.host.Log())
	go func() { // Fluent Bit's collect timer
		defer close(p.done)
		for {
			res, err := p.host.Collect(0, 1)
			if err != nil {
				return
			}
			if res.Records > 0 {
				w.mu.Lock()
				w.moments = append(w.moments, moment{at: time.Now(), pod: name, n: res.Records})
				w.mu.Unlock()
			}
			time.Sleep(collectEvery)
		}
	}()
	w.mu.Lock()
	w.pods = append(w.pods, p)
	w.mu.Unlock()
	return p
}

// leader waits until some pod hands over records after since, and returns
// it and when.
func (w *world) leaderAfter(since time.Time, within time.Duration) (string, time.Time) {
	w.t.Helper()
	var who string
	var at time.Time
	testenv.Eventually(w.t, within, "a pod exports", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, m := range w.moments {
			if m.at.After(since) {
				who, at = m.pod, m.at
				return true
			}
		}
		return false
	})
	return who, at
}

func (w *world) pod(name string) *pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.pods {
		if p.name == name {
			return p
		}
	}
	w.t.Fatalf("no pod %s", name)
	return nil
}

func (w *world) holder() string {
	l, err := w.kube.Admin.CoordinationV1().Leases(ns).Get(context.Background(), lease, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func TestFailover(t *testing.T) {
	kube := kubeapi.Start(t, ns)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	kube.GrantManifestRole(t, filepath.Join(root, "docker", "kubernetes", "daemonset", "10-rbac.yaml"), ns)
	fake := testenv.Fake(t, teleportfake.Config{})
	w := &world{t: t, kube: kube, fake: fake, identity: testenv.Identity(t, fake, teleportfake.IdentityOptions{}),
		start: time.Now().UTC().Truncate(time.Second), so: testenv.PluginSO(t)}

	stopEmitting := testenv.Live(fake, 8, eventsPerSec)

	for range 3 {
		w.startPod(t)
	}
	first, _ := w.leaderAfter(time.Time{}, 30*time.Second)
	t.Logf("%s leads first (lease holder %s)", first, w.holder())
	require.Equal(t, first, w.holder())

	var failovers []failover
	leader := first
	settle := func() { time.Sleep(2*handoverEvery + time.Second) } // the new leader exports and saves for a while
	for i := range 3 {
		settle()
		at := time.Now()
		require.NoError(t, w.pod(leader).host.Kill())
		next, began := w.leaderAfter(at, 3*leaseDuration)
		failovers = append(failovers, failover{how: "SIGKILL", from: leader, to: next, at: at, takeover: began.Sub(at), startedAt: began})
		t.Logf("failover %d: %s killed, %s exported %s later", i+1, leader, next, began.Sub(at).Round(10*time.Millisecond))
		w.startPod(t) // the DaemonSet replaces the pod, on a new node (a fresh db)
		leader = next
	}

	// Cut the leader off the API server while it still reaches Teleport.
	settle()
	at := time.Now()
	cut := w.pod(leader)
	cut.proxy.Cut()
	next, began := w.leaderAfter(at.Add(renewDeadline+time.Second), 3*leaseDuration)
	failovers = append(failovers, failover{how: cutOff, from: leader, to: next, at: at, takeover: began.Sub(at), startedAt: began})
	t.Logf("failover 4: %s cut off the API server, %s exported %s later", leader, next, began.Sub(at).Round(10*time.Millisecond))
	require.NotEqual(t, leader, next)
	settle()
	cut.proxy.Restore() // it comes back as a standby
	leader = next

	// A clean stop hands over at once and without replay.
	settle()
	at = time.Now()
	_, err = w.pod(leader).host.Quit()
	require.NoError(t, err)
	next, began = w.leaderAfter(at, 3*leaseDuration)
	failovers = append(failovers, failover{how: "clean stop", from: leader, to: next, at: at, takeover: began.Sub(at), startedAt: began})
	t.Logf("failover 5: %s stopped cleanly, %s exported %s later", leader, next, began.Sub(at).Round(10*time.Millisecond))
	settle()

	// Stop emitting and let the leader catch up with everything.
	want := stopEmitting()
	_, dups := testenv.EveryOnce(t, 30*time.Second, want, func() map[string]int {
		seen := map[string]int{}
		for _, p := range w.pods {
			for _, r := range records(t, p) {
				seen[r.uid]++
			}
		}
		return seen
	})

	// Each record's time is that of the collect that took it.
	w.mu.Lock()
	moments := append([]moment(nil), w.moments...)
	w.mu.Unlock()
	timed := map[string][]timedRecord{}
	for _, p := range w.pods {
		recs := records(t, p)
		i := 0
		for _, m := range moments {
			if m.pod != p.name {
				continue
			}
			for range m.n {
				if i < len(recs) {
					recs[i].at = m.at
					i++
				}
			}
		}
		require.Equal(t, len(recs), i, "records of %s match its collects", p.name)
		timed[p.name] = recs
	}

	// Between a takeover and the next failover only the new leader hands
	// records over: the old one stopped before (SIGKILL, or its renew
	// deadline when cut off the API server, or its clean stop).
	// Duplicates of a failover: what the new leader handed over in its
	// term that the old one had handed over before.
	for i, f := range failovers {
		// A holder cut off the API server exports until its renew deadline,
		// with its saves failing.
		bound := float64(eventsPerSec) * (handoverEvery + replayMargin + 2*time.Second).Seconds()
		if f.how == cutOff {
			bound += float64(eventsPerSec) * renewDeadline.Seconds()
		}
		end := time.Now()
		if i+1 < len(failovers) {
			end = failovers[i+1].at
		}
		before := map[string]bool{}
		for _, r := range timed[f.from] {
			if r.at.Before(f.startedAt) {
				before[r.uid] = true
			}
			if r.at.After(f.startedAt) && r.at.Before(end) {
				t.Errorf("%s handed over %s at %s, after %s took over at %s (%s)", f.from, r.uid,
					r.at.Format("15:04:05.000"), f.to, f.startedAt.Format("15:04:05.000"), f.how)
			}
		}
		for _, r := range timed[f.to] {
			if !r.at.Before(f.startedAt) && r.at.Before(end) && before[r.uid] {
				failovers[i].dups++
			}
		}
		t.Logf("failover %d (%s): %s -> %s, takeover %s, %d duplicates (bound %.0f)", i+1, f.how, f.from, f.to,
			f.takeover.Round(10*time.Millisecond), failovers[i].dups, bound)
		require.LessOrEqual(t, float64(failovers[i].dups), bound)
	}
	t.Logf("%d events emitted, %d duplicates in all", len(want), dups)
	require.Zero(t, failovers[len(failovers)-1].dups, "a clean stop hands over without duplicates")
	for _, f := range failovers {
		limit := leaseDuration + 4*time.Second
		if f.how == "clean stop" {
			limit = 4 * time.Second // released: no lease to wait out
		}
		require.Less(t, f.takeover, limit, "%s: %s -> %s", f.how, f.from, f.to)
	}
	for _, p := range w.pods {
		if !p.host.Exited() {
			require.NotContains(t, p.host.Log(), "panic")
		}
	}
}

const cutOff = "cut off the API server"

// failover is one change of leader.
type failover struct {
	how       string
	from, to  string
	at        time.Time // the leader was killed, cut or stopped
	takeover  time.Duration
	startedAt time.Time // the new leader's first records
	dups      int
}

type timedRecord struct {
	uid string
	at  time.Time
}

// records are the uids a pod's Fluent Bit took, in order.
func records(t *testing.T, p *pod) []timedRecord {
	recs, err := flbhost.ReadRecords(p.host.RecordsPath())
	if err != nil && !strings.Contains(err.Error(), "incomplete") { // a SIGKILL may cut the last frame
		t.Fatalf("records of %s: %v", p.name, err)
	}
	out := make([]timedRecord, len(recs))
	for i, r := range recs {
		out[i].uid, _ = r.Body["uid"].(string)
	}
	return out
}

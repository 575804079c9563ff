package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/kubeapi"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// Three real fluent-bit processes as three pods of a DaemonSet, with
// leader_election kubernetes against a real kube-apiserver, while the
// Teleport double emits live events: the leader is SIGKILLed three times
// and cut off the API server once. Every event reaches a file output, the
// old leader's output stops growing before the new one's starts (give or
// take Flush), and duplicates stay within the bound (tests/failover has the
// same with the test host, per failover).
func TestFailoverWithRealFluentBit(t *testing.T) {
	bin := fluentBit(t)
	so := testenv.PluginSO(t)
	const ns, lease, perSec = "fluent-bit-teleport", "teleport-e2e", 50
	kube := kubeapi.Start(t, ns)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	kube.GrantManifestRole(t, filepath.Join(root, "docker", "kubernetes", "daemonset", "10-rbac.yaml"), ns)
	c := newCluster(t, "failover.example.com")
	start := time.Now().UTC().Truncate(time.Second)

	var mu sync.Mutex
	stopEmitting := testenv.Live(c.srv, 9, perSec)

	type pod struct {
		p     *proc
		proxy *kubeapi.Proxy
		out   string
	}
	pods := map[string]*pod{}
	seq := 0
	startPod := func() {
		seq++
		name := fmt.Sprintf("fb-%d", seq)
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		require.NoError(t, os.MkdirAll(out, 0o755))
		proxy := kube.Proxy(t)
		plugins, main := classicConfig(so, out, input(c, "teleport", "teleport.audit", filepath.Join(dir, "db"), start,
			"leader_election", "kubernetes", "lease_name", lease, "kubeconfig", kube.Kubeconfig(t, proxy.URL, kubeapi.PluginToken, ns),
			"lease_duration", "4s", "renew_deadline", "3s", "retry_period", "500ms", "handover_interval", "2s", "replay_margin", "2s",
			"poll_interval", "100ms"))
		conf := write(t, filepath.Join(dir, "fluent-bit.conf"), fmt.Sprintf(main, write(t, filepath.Join(dir, "plugins.conf"), plugins)))
		mu.Lock()
		pods[name] = &pod{p: launchEnv(t, []string{"POD_NAME=" + name}, nil, bin, "-c", conf), proxy: proxy, out: out}
		mu.Unlock()
	}
	holder := func() string {
		l, err := kube.Admin.CoordinationV1().Leases(ns).Get(context.Background(), lease, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	lines := func(name string) int { return len(uidsIn(t, filepath.Join(pods[name].out, "*"))) }
	// grewAfter waits for a pod other than old to write records, and
	// returns it and when.
	grewAfter := func(old string, within time.Duration) (string, time.Time) {
		base := map[string]int{}
		for n := range pods {
			base[n] = lines(n)
		}
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			for n := range pods {
				if n != old && lines(n) > base[n] {
					return n, time.Now()
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no pod took over from %s within %s (lease holder %q)", old, within, holder())
		return "", time.Time{}
	}

	for range 3 {
		startPod()
	}
	testenv.Eventually(t, 30*time.Second, "a lease holder", func() bool { return holder() != "" })
	leader := holder()
	var report []string
	for i := range 4 {
		time.Sleep(5 * time.Second) // the leader exports and saves a while
		at := time.Now()
		how := "SIGKILL"
		if i < 3 {
			require.NoError(t, pods[leader].p.cmd.Process.Kill())
			<-pods[leader].p.done
		} else {
			how = "cut off the API server"
			pods[leader].proxy.Cut()
		}
		next, began := grewAfter(leader, 15*time.Second)
		if i == 3 {
			// The cut leader stopped handing records over at its renew
			// deadline; what it handed before leaves its output within Flush.
			before := lines(leader)
			time.Sleep(3 * time.Second)
			require.Equal(t, before, lines(leader), "%s still exports after %s took over", leader, next)
			pods[leader].proxy.Restore()
		} else {
			startPod()
		}
		report = append(report, fmt.Sprintf("%s %s->%s %s", how, leader, next, began.Sub(at).Round(10*time.Millisecond)))
		leader = next
	}
	time.Sleep(3 * time.Second)
	want := stopEmitting()
	_, dups := testenv.EveryOnce(t, 30*time.Second, want, func() map[string]int {
		seen := map[string]int{}
		for n := range pods {
			for _, id := range uidsIn(t, filepath.Join(pods[n].out, "*")) {
				seen[id]++
			}
		}
		return seen
	})
	// Per SIGKILL: handover_interval + replay_margin of events (+2 s slack);
	// the cut adds the renew deadline.
	bound := perSec * (3*(2+2+2) + (2 + 2 + 3 + 2))
	t.Logf("real fluent-bit: %d events, %d duplicates in 4 failovers (bound %d); takeovers: %v", len(want), dups, bound, report)
	require.LessOrEqual(t, dups, bound)
}

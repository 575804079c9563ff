package kubeapi

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/election"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/handover"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

const ns = "fluent-bit-teleport"

// RoleManifest is the Role the DaemonSet manifests ship.
func roleManifest(t *testing.T) string {
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	return filepath.Join(root, "docker", "kubernetes", "daemonset", "10-rbac.yaml")
}

type tlog struct{ t *testing.T }

func (l tlog) Infof(f string, a ...any) { l.t.Logf("info "+f, a...) }
func (l tlog) Warnf(f string, a ...any) { l.t.Logf("warn "+f, a...) }

// With only the manifests' Role: two candidates, one leads; the state it
// saves is handed to the next; a deposed holder's late write fails with the
// API server's conflict; and the Role allows nothing beyond its verbs.
func TestLeaseAndHandoverWithTheManifestRole(t *testing.T) {
	c := Start(t, ns)
	c.GrantManifestRole(t, roleManifest(t), ns)
	plugin := c.Client(t, c.URL, PluginToken)
	ctx := context.Background()

	newElector := func(id string) *election.Elector {
		e, err := election.New(election.Config{Client: plugin.CoordinationV1(), Namespace: ns, Name: "teleport-lease", Identity: id,
			LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond, Log: tlog{t}})
		require.NoError(t, err)
		return e
	}
	a, b := newElector("pod-a"), newElector("pod-b")
	var leading atomic.Int32
	run := func(e *election.Elector) (stop func()) {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.Run(ctx, func(term context.Context) {
				require.EqualValues(t, 1, leading.Add(1), "two leaders at once")
				<-term.Done()
				leading.Add(-1)
			})
		}()
		return func() { cancel(); <-done }
	}
	stopA := run(a)
	testenv.Eventually(t, 10*time.Second, "pod-a leads", a.Leader)
	stopB := run(b)
	defer stopB()

	// pod-a claims and saves; pod-b, once it leads, reads what pod-a saved.
	ka := handover.New(plugin.CoreV1(), ns, "teleport-lease", "pod-a")
	st, _, _, err := ka.Claim(ctx)
	require.NoError(t, err)
	require.Nil(t, st)
	saved := handover.State{Space: "cluster/teleport", Saved: time.Now().UTC(), Pairs: []db.Pair{{Key: "search", Val: []byte(`{"from":1}`)}}}
	v1, _, err := ka.Save(ctx, saved)
	require.NoError(t, err)

	began := time.Now()
	stopA()
	testenv.Eventually(t, 5*time.Second, "pod-b leads after pod-a released", b.Leader)
	t.Logf("pod-b led %s after pod-a stopped (released, lease 4s)", time.Since(began).Round(10*time.Millisecond))
	kb := handover.New(plugin.CoreV1(), ns, "teleport-lease", "pod-b")
	got, prev, v2, err := kb.Claim(ctx)
	require.NoError(t, err)
	require.Equal(t, v1, prev)
	require.NotEqual(t, v1, v2)
	require.Equal(t, "pod-a", got.Holder)
	require.Equal(t, saved.Pairs, got.Pairs)

	// pod-a's late write is fenced by the real 409 Conflict.
	_, _, err = ka.Save(ctx, saved)
	require.True(t, errors.Is(err, handover.ErrFenced), "%v", err)
	_, _, err = kb.Save(ctx, saved)
	require.NoError(t, err)

	lease, err := c.Admin.CoordinationV1().Leases(ns).Get(ctx, "teleport-lease", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "pod-b", *lease.Spec.HolderIdentity)
	require.EqualValues(t, 1, *lease.Spec.LeaseTransitions)

	// The Role is narrow: no listing, no deleting, no Secrets.
	_, err = plugin.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "list configmaps: %v", err)
	err = plugin.CoordinationV1().Leases(ns).Delete(ctx, "teleport-lease", metav1.DeleteOptions{})
	require.True(t, apierrors.IsForbidden(err), "delete lease: %v", err)
	_, err = plugin.CoreV1().Secrets(ns).Get(ctx, "x", metav1.GetOptions{})
	require.True(t, apierrors.IsForbidden(err), "get secret: %v", err)
	_, err = plugin.CoreV1().ConfigMaps("default").Get(ctx, "teleport-lease", metav1.GetOptions{})
	require.True(t, apierrors.IsForbidden(err), "other namespace: %v", err)
}

// A busy state at the ConfigMap limit is accepted by the real API server.
func TestLargestStateFits(t *testing.T) {
	c := Start(t, ns)
	c.GrantManifestRole(t, roleManifest(t), ns)
	plugin := c.Client(t, c.URL, PluginToken)
	k := handover.New(plugin.CoreV1(), ns, "big", "pod-a")
	_, _, _, err := k.Claim(context.Background())
	require.NoError(t, err)
	// Uid hashes do not compress: random bytes just under the limit.
	val := make([]byte, handover.MaxStateBytes-1024)
	_, _ = rand.Read(val)
	pairs := []db.Pair{{Key: "search", Val: []byte(`{"from":1}`)}, {Key: "seen/2026-12-04/x", Val: val}}
	size := handover.Size(pairs)
	require.LessOrEqual(t, size, handover.MaxStateBytes)
	require.Greater(t, size, handover.MaxStateBytes-2048)
	_, leftOut, err := k.Save(context.Background(), handover.State{Space: "c/i", Pairs: pairs})
	require.NoError(t, err)
	require.False(t, leftOut)
	t.Logf("the API server took a state of %d bytes compressed", size)
}

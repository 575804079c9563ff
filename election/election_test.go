package election

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

type testLog struct {
	t  *testing.T
	mu sync.Mutex
	l  []string
}

func (l *testLog) Infof(f string, a ...any) { l.add("info " + fmt.Sprintf(f, a...)) }
func (l *testLog) Warnf(f string, a ...any) { l.add("warn " + fmt.Sprintf(f, a...)) }
func (l *testLog) add(s string) {
	l.mu.Lock()
	l.l = append(l.l, s)
	l.mu.Unlock()
	l.t.Log(s)
}

func newElector(t *testing.T, c *fake.Clientset, id string) *Elector {
	e, err := New(Config{Client: c.CoordinationV1(), Namespace: "ns", Name: "lease", Identity: id,
		LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond,
		Log: &testLog{t: t}})
	require.NoError(t, err)
	return e
}

// run starts an elector whose lead marks it active until its term ends.
func run(e *Elector, active *atomic.Int32, ends chan<- string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Run(ctx, func(term context.Context) {
			active.Add(1)
			<-term.Done()
			active.Add(-1)
			ends <- e.cfg.Identity
		})
	}()
	return func() { cancel(); <-done }
}

func TestOneLeaderAndHandOffAtStop(t *testing.T) {
	c := fake.NewClientset()
	a, b := newElector(t, c, "a"), newElector(t, c, "b")
	var active atomic.Int32
	ends := make(chan string, 4)
	stopA := run(a, &active, ends)
	testenv.Eventually(t, 3*time.Second, "a leads", func() bool { return a.Leader() && active.Load() == 1 })
	stopB := run(b, &active, ends)
	defer stopB()
	testenv.Eventually(t, time.Second, "b sees a as holder", func() bool { return b.Holder() == "a" })
	require.False(t, b.Leader())
	require.EqualValues(t, 1, active.Load(), "b stands by")

	began := time.Now()
	stopA() // releases the lease after its term ended
	require.Equal(t, "a", <-ends)
	require.False(t, a.Leader())
	require.EqualValues(t, 2, a.Transitions())
	// Released, not expired: b need not wait out the 2 s lease.
	testenv.Eventually(t, 1500*time.Millisecond, "b leads after a released", b.Leader)
	t.Logf("b led %s after a stopped", time.Since(began))
	// Leader turns true as the term begins, just before lead runs.
	testenv.Eventually(t, time.Second, "b's lead runs", func() bool { return active.Load() == 1 })
	require.Equal(t, "b", b.Holder())
}

// A holder whose renewals fail stops its term by its own clock at the renew
// deadline, before the lease expires for the others.
func TestTermEndsAtRenewDeadline(t *testing.T) {
	c := fake.NewClientset()
	a := newElector(t, c, "a")
	var active atomic.Int32
	ends := make(chan string, 4)
	stop := run(a, &active, ends)
	defer stop()
	testenv.Eventually(t, 3*time.Second, "a leads", a.Leader)

	// The API server stops answering: every call hangs until its context ends.
	var cut atomic.Bool
	cut.Store(true)
	c.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		if cut.Load() {
			time.Sleep(5 * time.Second)
			return true, nil, errors.New("unreachable")
		}
		return false, nil, nil
	})
	lastRenew := a.lock.lastRenewed()
	require.Equal(t, "a", <-ends)
	stoppedAfter := time.Since(lastRenew)
	t.Logf("term ended %s after the last renewal (renew deadline 1.5s, lease 2s)", stoppedAfter)
	require.Less(t, stoppedAfter, 2*time.Second, "the term must end before the lease expires for the others")
	require.GreaterOrEqual(t, stoppedAfter, 1500*time.Millisecond)
	cut.Store(false)
}

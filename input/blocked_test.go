package input

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	apiproto "github.com/gravitational/teleport/api/client/proto"
	"github.com/gravitational/trace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc/memlog"
)

// changingCluster is a cluster whose bulk export and name the test changes.
type changingCluster struct {
	*memlog.Log
	bulk  atomic.Bool
	name  atomic.Value // string
	pings atomic.Int32
}

func newChangingCluster(log *memlog.Log) *changingCluster {
	c := &changingCluster{Log: log}
	c.name.Store("mem")
	log.Bulk = true // gated by c.bulk
	return c
}

func (c *changingCluster) Ping(ctx context.Context) (apiproto.PingResponse, error) {
	c.pings.Add(1)
	p, err := c.Log.Ping(ctx)
	p.ClusterName = c.name.Load().(string)
	return p, err
}

func (c *changingCluster) ExportChunks(ctx context.Context, date time.Time) ([]string, error) {
	if !c.bulk.Load() {
		return nil, trace.NotImplemented("no bulk export")
	}
	return c.Log.ExportChunks(ctx, date)
}

func (c *changingCluster) dial(context.Context, string, *teleportsrc.Credentials, time.Duration) (teleportsrc.Client, error) {
	return c, nil
}

// export_mode bulk on a cluster without bulk export cannot heal by
// retrying: one error line that says what to do, slow re-checks, the
// blocked gauge; and the export starts once the cluster has it.
func TestBulkOnAClusterWithoutItIsLoggedOnceAndRechecked(t *testing.T) {
	f := newFixture(t)
	c := newChangingCluster(f.log)
	x, l := f.start(t, c.dial, "export_mode", "bulk")
	const line = "export_mode is bulk, but Teleport at mem:1 has no bulk export"
	require.Eventually(t, func() bool { return c.pings.Load() >= 4 }, 10*time.Second, 5*time.Millisecond, "re-checked")
	assert.Equal(t, 1, l.Count(line), "logged once")
	assert.True(t, l.Has("set export_mode to auto or search"))
	assert.Equal(t, int64(1), x.Stats().Errors.Load(), "counted once")
	assert.True(t, x.Snapshot().Blocked)

	ids := f.seedBatch(5, "b", t0.Add(time.Second))
	c.bulk.Store(true)
	assert.ElementsMatch(t, ids, takeN(t, x, len(ids), true))
	assert.False(t, x.Snapshot().Blocked)
	assert.True(t, l.Has("no longer blocked"))
}

// A reconnect that reaches another cluster than the one this input exports
// is the operator's to fix: logged once, then re-checked slowly.
func TestAnotherClusterIsLoggedOnceAndRechecked(t *testing.T) {
	f := newFixture(t)
	c := newChangingCluster(f.log)
	ids := f.seed(3, "e")
	x, l := f.start(t, c.dial)
	assert.Equal(t, ids, takeN(t, x, len(ids), true))

	c.name.Store("other")
	f.log.FailNext(errors.New("unavailable")) // the connection drops
	const line = `connected to cluster "other" at mem:1, but this input exports cluster "mem"`
	require.Eventually(t, func() bool { return l.Has(line) }, 10*time.Second, 5*time.Millisecond)
	pings := c.pings.Load()
	require.Eventually(t, func() bool { return c.pings.Load() >= pings+3 }, 10*time.Second, 5*time.Millisecond, "re-checked")
	assert.Equal(t, 1, l.Count(line), "logged once")
	assert.True(t, x.Snapshot().Blocked)

	c.name.Store("mem")
	more := f.seedBatch(2, "n", t0.Add(time.Minute))
	assert.Equal(t, more, takeN(t, x, len(more), true))
	assert.True(t, l.Has("no longer blocked"))
	assert.False(t, x.Snapshot().Blocked)
}

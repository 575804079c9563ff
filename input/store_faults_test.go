package input

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc/memlog"
)

var errDiskFull = errors.New("no space left on device")

// A position that cannot be saved is saved later, with a log line; until
// then nothing new is handed over, so nothing is lost and a restart in
// between repeats only what was handed over unsaved.
func TestCannotSaveThePosition(t *testing.T) {
	f := newFixture(t)
	f.mem = db.NewMemory()
	ids := f.seed(90, "e")
	x, l := f.start(t, nil, "batch_max_records", "30")
	got := takeN(t, x, 30, true)

	f.mem.FailWrites("", errDiskFull)
	b := take(t, x)
	got = append(got, uidsOf(t, b)...)
	x.Commit(b)
	assert.True(t, l.Has("error cannot save the position in db "+f.db+": no space left on device; no new events are handed over until it is saved, retrying in"), l.Lines())
	assert.Never(t, func() bool {
		b := x.Collect()
		x.Commit(b) // as the plugin's collect does: retries the save
		return len(b.Records) > 0
	}, 200*time.Millisecond, 5*time.Millisecond, "held back while the position cannot be saved")
	assert.Greater(t, l.Count("cannot save the position"), 1, "retried")

	f.mem.FailWrites("", nil)
	got = append(got, takeN(t, x, len(ids)-len(got), true)...)
	assert.Equal(t, ids, got, "nothing lost, nothing twice")
	assert.True(t, l.Has("info saved the position in db "+f.db+" again; the export goes on"))
	x.Stop(time.Second)

	f.log.Add(memlog.Event("new", "user.login", t0.Add(time.Hour)))
	y, _ := f.start(t, nil)
	assert.Equal(t, []string{"new"}, uidsOf(t, take(t, y)), "the saved position holds the batch saved late")
}

// Stopped before the store recovers, the input sends the unsaved batch
// again at the next start.
func TestUnsavedBatchComesAgainAfterARestart(t *testing.T) {
	f := newFixture(t)
	f.mem = db.NewMemory()
	ids := f.seed(20, "e")
	x, _ := f.start(t, nil, "batch_max_records", "10")
	require.Equal(t, ids[:10], takeN(t, x, 10, true))
	f.mem.FailWrites("", errDiskFull)
	require.Equal(t, ids[10:], takeN(t, x, 10, true))
	x.Stop(time.Second)

	f.mem.FailWrites("", nil)
	y, _ := f.start(t, nil, "batch_max_records", "10")
	assert.Equal(t, ids[10:], takeN(t, y, 10, true))
}

// When the delivered-event index cannot be read, the reader that asks
// fails, with a log line, and asks again after the reconnect delay:
// answering "not seen" would send events again. New events still flow.
func TestCannotReadTheIndex(t *testing.T) {
	f := newFixture(t)
	f.mem = db.NewMemory()
	ids := f.seed(10, "e")
	// Every event stays within settle_period of now, so the re-scan after
	// a restart asks the index about each.
	x, _ := f.start(t, nil, "settle_period", "2h")
	require.Equal(t, ids, takeN(t, x, len(ids), true))
	x.Stop(time.Second)

	f.mem.FailReads("/seen/", errDiskFull)
	y, l := f.start(t, nil, "settle_period", "2h")
	logged := "error cannot read the delivered-event index in db " + f.db + ": no space left on device (check the db directory's disk and permissions); the export waits for it rather than send events twice; retrying in"
	require.Eventually(t, func() bool { return l.Count(logged) > 1 }, 10*time.Second, 5*time.Millisecond, "asked again")
	f.log.Add(memlog.Event("new", "user.login", t0.Add(time.Minute)))
	assert.Equal(t, []string{"new"}, uidsOf(t, take(t, y)), "new events flow; none is sent twice")

	f.mem.FailReads("", nil)
	failures := l.Count(logged)
	f.log.Add(memlog.Event("newer", "user.login", t0.Add(2*time.Minute)))
	assert.Equal(t, []string{"newer"}, uidsOf(t, take(t, y)), "nothing sent twice once the index reads")
	assert.LessOrEqual(t, l.Count(logged), failures+1, "the re-scan went through")
}

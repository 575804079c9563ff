package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apievents "github.com/gravitational/teleport/api/types/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

const getEvents = "/teleport.auditlog.v1.AuditLogService/GetUnstructuredEvents"

func TestRegistersAsTeleportInput(t *testing.T) {
	h := host(t, flbhost.Options{})
	reg, err := h.Registration()
	require.NoError(t, err)
	assert.Equal(t, "teleport", reg.Name)
	assert.Equal(t, 1, reg.Type)
	assert.Equal(t, 11, reg.Proxy)
	assert.Equal(t, "ctx", reg.Collect, "multi-instance callbacks")
	assert.Equal(t, "ctx", reg.Cleanup)
}

// Every event arrives once, in time order, with its time (nanoseconds kept)
// as the record time and its fields exactly as Teleport's JSON has them.
func TestExportsEveryEventAsTeleportJSON(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	start := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	gen := teleportfake.NewGenerator(7)
	evs := gen.Events(3000, start.Add(time.Second), 80*time.Second+123456789)
	e.srv.Append(evs...)

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start, "page_size", "500"))
	_, err := h.Drain(idx, len(evs), 60*time.Second, 0)
	require.NoError(t, err, h.Log())

	recs := records(t, h)
	require.Len(t, recs, len(evs))
	for i, r := range recs {
		want := evs[i]
		require.Equal(t, want.GetID(), r.Body["uid"], "record %d in order", i)
		assert.True(t, want.GetTime().Equal(r.Time), "record time = event time with nanoseconds: %v vs %v", want.GetTime(), r.Time)
		assert.Empty(t, r.Metadata)

		// The body equals Teleport's own JSON of the event.
		js, err := json.Marshal(want)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(js, &m))
		assert.Equal(t, jsonNumbersAsRecord(m), signedInts(r.Body), "record %d (%s)", i, want.GetType())
	}
	// Integers stay integers.
	for _, r := range recs {
		if ei, ok := r.Body["ei"]; ok {
			assert.Contains(t, []string{"int64", "uint64"}, fmt.Sprintf("%T", ei), "ei is an integer")
		}
	}
	// One query per page plus one per (mostly empty) window, not per event.
	assert.Less(t, e.srv.CallCount(getEvents), 30)
}

// signedInts folds msgpack's unsigned integers into int64 for comparison:
// both are integers in every sink.
func signedInts(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = signedInts(e)
		}
	case []any:
		for i, e := range x {
			x[i] = signedInts(e)
		}
	case uint64:
		return int64(x)
	}
	return v
}

// jsonNumbersAsRecord turns encoding/json's float64s into what the plugin
// emits: integers for whole numbers.
func jsonNumbersAsRecord(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonNumbersAsRecord(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = jsonNumbersAsRecord(e)
		}
		return x
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
	}
	return v
}

func TestFollowsNewEventsWithoutRereading(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	first := testenv.Seed(e.srv, 1, 200, start, time.Second)

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start))
	_, err := h.Drain(idx, len(first), 30*time.Second, 0)
	require.NoError(t, err, h.Log())

	// Caught up: new events arrive within a few poll intervals, and polling
	// costs one query per interval.
	later := testenv.Seed(e.srv, 2, 5, time.Now(), time.Millisecond)
	_, err = h.Drain(idx, len(later), 10*time.Second, 10*time.Millisecond)
	require.NoError(t, err, h.Log())
	assert.Equal(t, append(first, later...), uids(records(t, h)))

	// Polling costs one query per poll_interval: the rate is taken from the
	// times the server saw the queries (n queries span n-1 intervals).
	e.srv.ResetCalls()
	testenv.Eventually(t, 10*time.Second, "six polls", func() bool { return e.srv.CallCount(getEvents) >= 6 })
	var at []time.Time
	for _, c := range e.srv.Calls() {
		if c.Method == getEvents {
			at = append(at, c.At)
			req := c.Request.(interface{ GetStartKey() string })
			assert.Empty(t, req.GetStartKey(), "polls are fresh narrow queries, not re-reads of delivered pages")
		}
	}
	require.GreaterOrEqual(t, len(at), 6)
	gaps := make([]time.Duration, len(at)-1)
	for i := range gaps {
		gaps[i] = at[i+1].Sub(at[i]).Round(time.Millisecond)
	}
	mean := at[len(at)-1].Sub(at[0]) / time.Duration(len(gaps))
	assert.GreaterOrEqual(t, mean, 90*time.Millisecond, "about one query per poll_interval (100ms); gaps between queries %v", gaps)
}

func TestOneMiBPageCapIsNotTheEnd(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	var want []string
	for i := 0; i < 40; i++ {
		ev := &apievents.UserLogin{
			Metadata: apievents.Metadata{Type: "user.login", Code: "T1000I", ID: fmt.Sprintf("big-%02d", i), Time: start.Add(time.Duration(i+1) * time.Second)},
			Method:   "local",
			Status:   apievents.Status{Success: true, UserMessage: strings.Repeat("x", 100<<10)},
		}
		e.srv.Append(ev)
		want = append(want, ev.ID)
	}
	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start, "page_size", "10000"))
	_, err := h.Drain(idx, len(want), 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	assert.Equal(t, want, uids(records(t, h)))
	assert.GreaterOrEqual(t, e.srv.CallCount(getEvents), 4, "100 KB events: about 10 per 1 MiB page")
}

func TestFiltersTypesAndSkipEventTypes(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	evs := testenv.SeedEvents(e.srv, 3, 2000, start.Add(time.Second), time.Second)
	want := testenv.IDs(evs, "user.login", "session.start")
	require.NotEmpty(t, testenv.IDs(evs, "exec"), "the seed has exec events to skip")

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start, "types", "user.login,session.start,exec", "skip_event_types", "exec"))
	_, err := h.Drain(idx, len(want), 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	// Caught up: a couple more polls hand over nothing else.
	polls := e.srv.CallCount(getEvents)
	testenv.Eventually(t, 10*time.Second, "two more polls", func() bool {
		h.Collect(idx, 1)
		return e.srv.CallCount(getEvents) >= polls+2
	})
	_, err = h.Collect(idx, 2)
	require.NoError(t, err)
	assert.Equal(t, want, uids(records(t, h)), "exactly the user.login and session.start events, in order; skip_event_types wins over types")
	for _, c := range e.srv.Calls() {
		if c.Method == getEvents {
			assert.Equal(t, []string{"user.login", "session.start", "exec"}, c.Request.(interface{ GetEventTypes() []string }).GetEventTypes())
		}
	}
}

func TestBatchLimitsAndCaughtUpBatches(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	ids := testenv.Seed(e.srv, 4, 1000, start.Add(time.Second), time.Second)

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start, "batch_max_records", "64", "batch_max_bytes", "40K"))
	_, err := h.Drain(idx, len(ids), 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	recs := records(t, h)
	require.Equal(t, ids, uids(recs))
	perFrame := map[int]int{}
	for _, r := range recs {
		perFrame[r.Frame]++
	}
	for f, n := range perFrame {
		assert.LessOrEqual(t, n, 64, "frame %d", f)
	}

	// Once caught up, a single new event is handed over on its own.
	more := testenv.Seed(e.srv, 5, 1, time.Now(), 0)
	_, err = h.Drain(idx, 1, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, err)
	last := records(t, h)
	assert.Equal(t, more[0], last[len(last)-1].Body["uid"])
}

// Two instances, two clusters, one db: each has its own connection,
// settings and key space, and records come back on the right instance.
func TestTwoInstancesTwoClusters(t *testing.T) {
	a := newEnv(t, teleportfake.Config{ClusterName: "alpha.example.com"})
	b := newEnv(t, teleportfake.Config{ClusterName: "beta.example.com"})
	db := filepath.Join(t.TempDir(), "shared-db")
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	idsA := testenv.Seed(a.srv, 10, 700, start.Add(time.Second), time.Second)
	idsB := testenv.IDs(testenv.SeedEvents(b.srv, 11, 900, start.Add(time.Second), time.Second), "user.login")
	require.NotEmpty(t, idsB)

	h := host(t, flbhost.Options{})
	ia := initOK(t, h, a.props(start, "db", db, "page_size", "100"))
	ib := initOK(t, h, b.props(start, "db", db, "types", "user.login"))
	_, err := h.Drain(ia, len(idsA), 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	_, err = h.Drain(ib, len(idsB), 30*time.Second, 0)
	require.NoError(t, err, h.Log())

	var gotA, gotB []string
	for _, r := range records(t, h) {
		switch r.Instance {
		case ia:
			gotA = append(gotA, r.Body["uid"].(string))
		case ib:
			gotB = append(gotB, r.Body["uid"].(string))
		default:
			t.Fatalf("record on unknown instance %d", r.Instance)
		}
	}
	assert.Equal(t, idsA, gotA, "alpha: every event once, in order, on its instance")
	assert.Equal(t, idsB, gotB, "beta: its user.login events only, in order, on its instance")
	for _, c := range a.srv.Calls() {
		if c.Method != getEvents {
			continue
		}
		assert.Nil(t, c.Request.(interface{ GetEventTypes() []string }).GetEventTypes(), "instance A has no type filter")
	}
	for _, c := range b.srv.Calls() {
		if c.Method == getEvents {
			assert.Equal(t, []string{"user.login"}, c.Request.(interface{ GetEventTypes() []string }).GetEventTypes(), "instance B's type filter")
		}
	}
	assert.Contains(t, h.Log(), "[input:teleport:teleport.0]")
	assert.Contains(t, h.Log(), "[input:teleport:teleport.1]")
	assert.Contains(t, h.Log(), `connected to Teleport cluster "alpha.example.com"`)
	assert.Contains(t, h.Log(), `connected to Teleport cluster "beta.example.com"`)
}

// A clean stop re-delivers nothing; a restart continues after the last batch.
func TestCleanStopAndRestartRedeliverNothing(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	ids := testenv.Seed(e.srv, 6, 3000, start.Add(time.Second), time.Second)

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start, "batch_max_records", "500"))
	_, err := h.Drain(idx, 1000, 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	_, err = h.Quit()
	require.NoError(t, err)
	part1 := uids(records(t, h))

	h2 := host(t, flbhost.Options{})
	idx = initOK(t, h2, e.props(start))
	_, err = h2.Drain(idx, len(ids)-len(part1), 30*time.Second, 0)
	require.NoError(t, err, h2.Log())
	part2 := uids(records(t, h2))
	assert.Equal(t, ids, append(part1, part2...), "no loss, no repeat")
	assert.Contains(t, h2.Log(), "resuming from the position saved in db")
}

func TestStartTimeIsIgnoredOnceACursorExists(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	ids := testenv.Seed(e.srv, 8, 100, start.Add(time.Second), time.Second)

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start))
	_, err := h.Drain(idx, len(ids), 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	_, err = h.Quit()
	require.NoError(t, err)

	h2 := host(t, flbhost.Options{})
	other := start.Add(-24 * time.Hour)
	idx = initOK(t, h2, e.props(other))
	logHas(t, h2, 10*time.Second, "start_time "+other.Format(time.RFC3339)+" is ignored")
	res, err := h2.Collect(idx, 2)
	require.NoError(t, err)
	assert.Zero(t, res.Records, "the db's position wins: nothing is exported again")
}

func TestSecondProcessOnTheSameDBGetsAClearError(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	props := e.props(time.Now())
	h1 := host(t, flbhost.Options{})
	initOK(t, h1, props)
	h2 := host(t, flbhost.Options{})
	_, err := h2.Init(props)
	require.Error(t, err)
	assert.Contains(t, h2.Log(), "is in use by another process (another Fluent Bit?): each Fluent Bit needs its own db directory")
	_, _ = h2.Quit()
}

func TestDBDirectoryIsPrivate(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	h := host(t, flbhost.Options{})
	initOK(t, h, e.props(time.Now()))
	fi, err := os.Stat(e.db)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}

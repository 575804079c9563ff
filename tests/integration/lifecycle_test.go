package integration

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// Pause stops fetching (memory stays bounded by the queue), resume restarts it.
func TestPauseStopsFetchingAndResumeRestarts(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	ids := testenv.Seed(e.srv, 30, 600, start.Add(time.Second), time.Second)

	h := host(t, flbhost.Options{})
	// A queue of 100 records: the fetcher must stop at the bound.
	idx := initOK(t, h, e.props(start, "batch_max_records", "100", "page_size", "50"))
	_, err := h.Drain(idx, 100, 30*time.Second, 0)
	require.NoError(t, err, h.Log())

	called, err := h.Pause(idx)
	require.NoError(t, err)
	require.True(t, called)
	// Whatever was in flight settles: then no query happens while paused.
	var settled int
	testenv.Eventually(t, 5*time.Second, "fetcher idle", func() bool {
		n := e.srv.CallCount(getEvents)
		time.Sleep(300 * time.Millisecond) // three poll intervals without a query
		settled = e.srv.CallCount(getEvents)
		return n == settled
	})
	time.Sleep(500 * time.Millisecond) // observe an absence: five more poll intervals
	assert.Equal(t, settled, e.srv.CallCount(getEvents), "no queries while paused")

	require.NoError(t, h.Resume(idx))
	// The first drain may have taken more than 100 (it stops after the
	// collect that passed 100).
	_, err = h.Drain(idx, len(ids)-len(records(t, h)), 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	assert.Equal(t, ids, uids(records(t, h)))
}

// Fluent Bit's pause of one of several Go input instances stops the timer
// of the last one initialised, and keeps calling collect on the paused one.
// The plugin hands nothing over while paused: what it handed then would
// wait in a ring buffer Fluent Bit does not drain while the input is
// paused, or be dropped at shutdown after the position moved past it.
func TestNothingHandedOverWhilePausedDespiteFluentBitsMultiInstanceBug(t *testing.T) {
	a := newEnv(t, teleportfake.Config{ClusterName: "a.example.com"})
	b := newEnv(t, teleportfake.Config{ClusterName: "b.example.com"})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	idsA := testenv.Seed(a.srv, 32, 300, start.Add(time.Second), time.Second)
	testenv.Seed(b.srv, 33, 10, start.Add(time.Second), time.Second)

	h := host(t, flbhost.Options{PauseLastInstance: true})
	metrics := testenv.FreeAddr(t)
	ia := initOK(t, h, a.props(start, "batch_max_records", "100", "metrics_listen", metrics))
	initOK(t, h, b.props(start))
	_, err := h.Drain(ia, 100, 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	queued := regexp.MustCompile(`fluentbit_teleport_queued_records\{cluster="a.example.com",input="teleport.0"\} [1-9]`)
	testenv.Eventually(t, 10*time.Second, "records queued", func() bool { return queued.MatchString(testenv.Scrape(t, metrics)) })

	called, err := h.Pause(ia)
	require.NoError(t, err)
	require.True(t, called)
	got, err := h.Collect(ia, 3) // Fluent Bit still calls it
	require.NoError(t, err, "the host, like Fluent Bit, lets the paused instance's timer run")
	assert.Zero(t, got.Records, "nothing handed over while paused")

	require.NoError(t, h.Resume(ia))
	fromA := func() []string {
		var out []string
		for _, r := range records(t, h) {
			if r.Instance == ia {
				out = append(out, uidOf(r))
			}
		}
		return out
	}
	_, err = h.Drain(ia, len(idsA)-len(fromA()), 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	assert.Equal(t, idsA, fromA(), "every event once, in order, across the pause")
}

// FLBPluginExit stops everything; Init runs again in the same process (the
// .so stays loaded) and continues from the saved position.
func TestExitThenInitAgainInTheSameProcess(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	ids := testenv.Seed(e.srv, 31, 1000, start.Add(time.Second), time.Second)

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start, "batch_max_records", "300"))
	_, err := h.Drain(idx, 300, 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	// Exit does not wait out a poll, a retry or the dial_timeout. The bound
	// is loose for loaded machines; tests/bench reports the real latency.
	begin := time.Now()
	require.NoError(t, h.Exit(idx))
	assert.Less(t, time.Since(begin), 3*time.Second, "exit is quick")

	idx2 := initOK(t, h, e.props(start))
	_, err = h.Drain(idx2, len(ids)-len(records(t, h)), 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	assert.Equal(t, ids, uids(records(t, h)))
}

// Hot reload (SIGHUP): Fluent Bit re-registers, exits the old instances and
// inits new ones in the same process, within a second.
func TestHotReloadContinuesWithoutLossOrRepeat(t *testing.T) {
	a := newEnv(t, teleportfake.Config{ClusterName: "a.example.com"})
	b := newEnv(t, teleportfake.Config{ClusterName: "b.example.com"})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	idsA := testenv.Seed(a.srv, 32, 900, start.Add(time.Second), time.Second)
	idsB := testenv.Seed(b.srv, 33, 900, start.Add(time.Second), time.Second)

	h := host(t, flbhost.Options{HotReload: true})
	ia := initOK(t, h, a.props(start, "batch_max_records", "200"))
	ib := initOK(t, h, b.props(start, "batch_max_records", "200"))
	_, err := h.DrainAll(200, 30*time.Second, 0)
	require.NoError(t, err, h.Log())

	for i := 0; i < 2; i++ {
		r, err := h.Reload()
		require.NoError(t, err, h.Log())
		// Loose for loaded machines; tests/bench reports the real latency.
		assert.Less(t, r.Elapsed, 3*time.Second, "reload %d took %s", i, r.Elapsed)
	}
	var gotA, gotB []string
	split := func() {
		gotA, gotB = nil, nil
		for _, r := range records(t, h) {
			if r.Instance == ia {
				gotA = append(gotA, r.Body["uid"].(string))
			} else if r.Instance == ib {
				gotB = append(gotB, r.Body["uid"].(string))
			}
		}
	}
	split()
	_, err = h.Drain(ia, len(idsA)-len(gotA), 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	_, err = h.Drain(ib, len(idsB)-len(gotB), 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	split()
	assert.Equal(t, idsA, gotA)
	assert.Equal(t, idsB, gotB)
}

// The host is killed with SIGKILL at random moments while exporting; each
// restart on the same db continues. As in Fluent Bit, what the host took is
// on its ring buffer until its collector moves it into the records file, and
// a kill loses what is still there. Every event arrives, and an event is
// repeated only if it was in the last batch before a kill.
func TestCrashSafetyUnderSIGKILL(t *testing.T) {
	t.Run("counters", func(t *testing.T) { crashRounds(t, false) })
	// Without Fluent Bit's counters, the time rule stands in.
	t.Run("time rule", func(t *testing.T) { crashRounds(t, true) })
}

func crashRounds(t *testing.T, noCmetrics bool) {
	const events, rounds = 20000, 20
	e := newEnv(t, teleportfake.Config{})
	start := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	want := testenv.Seed(e.srv, 40, events, start.Add(time.Second), 8*time.Second)
	rng := rand.New(rand.NewPCG(1, 2))

	seen := map[string]int{}
	var lastBatches []map[string]bool
	// Small batches collected every 10 ms and a 20 ms ring buffer: a few
	// batches a round, so all 20 rounds are killed in the middle of the
	// export, mostly with a batch on the ring buffer.
	props := e.props(start, "batch_max_records", "100", "page_size", "250")
	dir := t.TempDir()
	for round := 0; round < rounds; round++ {
		recPath := filepath.Join(dir, fmt.Sprintf("records-%d", round))
		h := host(t, flbhost.Options{RecordsPath: recPath, RingBuffer: 20 * time.Millisecond, NoCmetrics: noCmetrics})
		idx := initOK(t, h, props)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = h.Drain(idx, events, 60*time.Second, 10*time.Millisecond)
		}()
		time.Sleep(time.Duration(20+rng.IntN(130)) * time.Millisecond)
		require.NoError(t, h.Kill())
		<-done

		recs, err := flbhost.ReadRecords(recPath)
		if err != nil {
			require.ErrorIs(t, err, flbhost.ErrIncompleteFrame, "only a frame cut by the kill may be incomplete")
		}
		last := map[string]bool{}
		lastFrame := -1
		for _, r := range recs {
			lastFrame = max(lastFrame, r.Frame)
		}
		for _, r := range recs {
			uid := r.Body["uid"].(string)
			seen[uid]++
			if r.Frame == lastFrame {
				last[uid] = true
			}
		}
		lastBatches = append(lastBatches, last)
	}

	seenByKilledRounds := len(seen)
	// Finish the export cleanly.
	h := host(t, flbhost.Options{RecordsPath: filepath.Join(dir, "records-final"), RingBuffer: 20 * time.Millisecond, NoCmetrics: noCmetrics})
	idx := initOK(t, h, props)
	// The restart repeats the last batch, so drain until nothing is missing;
	// a drain times out if events were lost (the position is past them).
	missing := func() int {
		n := 0
		got := map[string]bool{}
		for _, r := range records(t, h) {
			got[r.Body["uid"].(string)] = true
		}
		for _, id := range want {
			if seen[id] == 0 && !got[id] {
				n++
			}
		}
		return n
	}
	for n := missing(); n > 0; n = missing() {
		if _, err := h.Drain(idx, n, 20*time.Second, 0); err != nil {
			require.ErrorContains(t, err, "timeout", h.Log())
			break
		}
	}
	_, err := h.Quit()
	require.NoError(t, err)
	final, err := flbhost.ReadRecords(filepath.Join(dir, "records-final"))
	require.NoError(t, err)

	for _, r := range final {
		seen[r.Body["uid"].(string)]++
	}
	lost := 0
	for _, id := range want {
		if seen[id] == 0 {
			lost++
		}
	}
	require.Zero(t, lost, "%d of %d events lost", lost, events)
	require.Len(t, seen, events, "nothing but the seeded events")

	// Each repeat must come from a batch that was the last before a kill.
	allowed := map[string]int{}
	for _, last := range lastBatches {
		for id := range last {
			allowed[id]++
		}
	}
	repeats := 0
	for id, n := range seen {
		if n > 1 {
			repeats += n - 1
			assert.LessOrEqual(t, n-1, allowed[id], "event %s repeated %d times but was in %d last batches", id, n-1, allowed[id])
		}
	}
	require.Len(t, lastBatches, rounds)
	require.Less(t, seenByKilledRounds, events, "every round was killed while exporting")
	t.Logf("%d rounds killed; %d events, %d repeats (all from the last batch before a kill)", len(lastBatches), events, repeats)
}

// A clean stop (SIGTERM) or hot reload exits the input after Fluent Bit's
// grace period, during which its engine still moves the ring buffer into
// chunks (src/flb_engine.c: flb_engine_stop_ingestion, then
// flb_engine_shutdown). A batch still on the ring buffer at exit is dropped
// by Fluent Bit and must come again; one moved during the grace must not.
func TestCleanStopWithBatchOnRingBuffer(t *testing.T) {
	for _, c := range []struct {
		name string
		opts flbhost.Options
	}{
		{"dropped at exit", flbhost.Options{RingBufferByHand: true}},
		{"dropped at exit, time rule", flbhost.Options{RingBufferByHand: true, NoCmetrics: true}},
		{"moved during the grace", flbhost.Options{RingBuffer: 50 * time.Millisecond, Grace: 300 * time.Millisecond}},
		{"moved during the grace, time rule", flbhost.Options{RingBuffer: 50 * time.Millisecond, Grace: time.Second, NoCmetrics: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, teleportfake.Config{})
			start := time.Now().Add(-time.Hour).Truncate(time.Second)
			ids := testenv.Seed(e.srv, 41, 500, start.Add(time.Second), time.Second)
			props := e.props(start, "batch_max_records", "100")
			dir := t.TempDir()

			opts := c.opts
			opts.RecordsPath = filepath.Join(dir, "first")
			h := host(t, opts)
			idx := initOK(t, h, props)
			// Hand over a batch, and another once the first is committed,
			// then stop while the second is on the ring buffer.
			inFlight := 0
			for handed := 0; handed < 2; {
				r, err := h.CollectNoWait(idx, 1)
				require.NoError(t, err, h.Log())
				if r.Records == 0 {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				handed++
				inFlight = r.Records
				if handed == 1 && c.opts.RingBufferByHand {
					require.NoError(t, h.CollectRingBuffer())
				}
			}
			if c.opts.RingBufferByHand {
				st, err := h.Stats()
				require.NoError(t, err)
				require.Equal(t, inFlight, st.Queued, "the second batch is on the ring buffer")
			}
			_, err := h.Quit()
			require.NoError(t, err)
			dropped := fmt.Sprintf("dropped at exit: %d records", inFlight)
			if c.opts.RingBufferByHand {
				require.Contains(t, h.Stderr(), dropped)
			} else {
				require.NotContains(t, h.Stderr(), "dropped at exit", "moved during the grace")
			}
			first, err := flbhost.ReadRecords(opts.RecordsPath)
			require.NoError(t, err)

			opts.RecordsPath = filepath.Join(dir, "second")
			opts.RingBufferByHand, opts.RingBuffer = false, 20*time.Millisecond
			h = host(t, opts)
			idx = initOK(t, h, props)
			_, err = h.Drain(idx, len(ids)-len(first), 30*time.Second, 0)
			require.NoError(t, err, h.Log())
			_, err = h.Quit()
			require.NoError(t, err)
			second, err := flbhost.ReadRecords(opts.RecordsPath)
			require.NoError(t, err)
			assert.Equal(t, ids, append(uids(first), uids(second)...), "every event once, in order")
		})
	}
}

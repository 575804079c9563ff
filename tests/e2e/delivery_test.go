package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// deliverySetup is one cluster, a db, a storage.path and a file output.
type deliverySetup struct {
	c       cluster
	dir     string
	out     string
	outFile string
	conf    string
}

// newDeliverySetup writes a classic config with storage.type filesystem on
// the input; service adds lines to [SERVICE].
func newDeliverySetup(t *testing.T, name string, start time.Time, batch int, service ...string) *deliverySetup {
	s := &deliverySetup{c: newCluster(t, name), dir: t.TempDir()}
	s.out = filepath.Join(s.dir, "out")
	s.outFile = filepath.Join(s.out, "teleport.kill")
	require.NoError(t, os.MkdirAll(s.out, 0o755))
	so := testenv.PluginSO(t)
	plugins, mainConf := classicConfig(so, s.out,
		input(s.c, "kill", "teleport.kill", filepath.Join(s.dir, "db"), start,
			"batch_max_records", fmt.Sprint(batch), "storage.type", "filesystem"))
	extra := fmt.Sprintf("    storage.path %s\n    storage.sync full\n", filepath.Join(s.dir, "storage"))
	for _, l := range service {
		extra += "    " + l + "\n"
	}
	mainConf = strings.Replace(mainConf, "[SERVICE]\n", "[SERVICE]\n"+extra, 1)
	pluginsPath := write(t, filepath.Join(s.dir, "plugins.conf"), plugins)
	s.conf = write(t, filepath.Join(s.dir, "fluent-bit.conf"), fmt.Sprintf(mainConf, pluginsPath))
	return s
}

// uidsAfterKills is uidsIn for a file output that fluent-bit was killed in
// the middle of writing: the restart appends to the cut line, so a line may
// be a cut record followed by a whole one. The cut record is not counted
// (Fluent Bit sends its chunk again); the whole one is.
func uidsAfterKills(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	complete := string(raw[:strings.LastIndexByte(string(raw), '\n')+1])
	var out []string
	for _, line := range strings.Split(complete, "\n") {
		for p := 0; p < len(line); p++ {
			if line[p] != '{' {
				continue
			}
			var m map[string]any
			if json.Unmarshal([]byte(line[p:]), &m) == nil {
				if uid, ok := m["uid"].(string); ok {
					out = append(out, uid)
				}
				break
			}
		}
	}
	return out
}

// missingAndDuplicates compares the output with want: events missing,
// extra copies, and events that have extra copies.
func missingAndDuplicates(want, got []string) (missing, dups, repeated int) {
	counts := countEach(got)
	for _, id := range want {
		if counts[id] == 0 {
			missing++
		}
	}
	for _, n := range counts {
		if n > 1 {
			dups += n - 1
			repeated++
		}
	}
	return missing, dups, repeated
}

// fluent-bit is killed with SIGKILL ten times at random moments while it
// exports 20,000 events (plus 100 new ones a second) with storage.type
// filesystem, and restarted each time on the same db and storage.path.
// Every event arrives; the duplicates each kill caused are reported.
func TestKillNineLosesNothingWithRealFluentBit(t *testing.T) {
	bin := fluentBit(t)
	const backlog, kills, batch = 20000, 10, 500
	start := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	s := newDeliverySetup(t, "kill.example.com", start, batch)
	want := testenv.Seed(s.c.srv, 70, backlog, start.Add(time.Second), 8*time.Second)

	// New events while the export runs.
	live := make(chan []string)
	stopLive := make(chan struct{})
	go func() {
		var ids []string
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for seed := int64(1000); ; seed++ {
			select {
			case <-stopLive:
				live <- ids
				return
			case <-tick.C:
				ids = append(ids, testenv.Seed(s.c.srv, seed, 10, time.Now(), time.Millisecond)...)
			}
		}
	}()

	rng := rand.New(rand.NewPCG(7, 70))
	dupsBefore, repBefore := 0, 0
	var perKill []string
	for k := 0; k < kills; k++ {
		p := startFluentBit(t, bin, "-c", s.conf)
		before := len(uidsAfterKills(t, s.outFile))
		waitUntil(t, p, time.Minute, func() string { return "no new event after the restart" },
			func() bool { return len(uidsAfterKills(t, s.outFile)) > before })
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond)
		require.NoError(t, p.cmd.Process.Kill())
		<-p.done
		got := uidsAfterKills(t, s.outFile)
		_, dups, rep := missingAndDuplicates(nil, got)
		if k > 0 { // from the restart after kill k-1
			perKill = append(perKill, fmt.Sprintf("%d/%d", dups-dupsBefore, rep-repBefore))
		}
		dupsBefore, repBefore = dups, rep
		t.Logf("kill %d: %d events out so far", k+1, len(got))
	}
	close(stopLive)
	want = append(want, <-live...)
	require.Less(t, len(uidsAfterKills(t, s.outFile)), len(want), "the kills came during the export")

	p := startFluentBit(t, bin, "-c", s.conf)
	waitUntil(t, p, 5*time.Minute,
		func() string {
			m, _, _ := missingAndDuplicates(want, uidsAfterKills(t, s.outFile))
			return fmt.Sprintf("%d of %d events missing", m, len(want))
		},
		func() bool { m, _, _ := missingAndDuplicates(want, uidsAfterKills(t, s.outFile)); return m == 0 })
	p.stop(t, 30*time.Second)

	got := uidsAfterKills(t, s.outFile)
	missing, dups, rep := missingAndDuplicates(want, got)
	perKill = append(perKill, fmt.Sprintf("%d/%d", dups-dupsBefore, rep-repBefore))
	t.Logf("%d kills, %d events: %d missing, %d duplicates; per kill, extra copies/events copied: %v (batch_max_records %d)",
		kills, len(want), missing, dups, perKill, batch)
	require.Zero(t, missing)
	require.Len(t, countEach(got), len(want), "nothing but the seeded events")
}

// stopAndRestart runs fluent-bit with the ring buffer moved into chunks
// only every 3 s (FLB_DEV_RB_MS), so that a batch is usually still on the
// ring buffer when the input exits; stop ends it in mid-export. Nothing is
// lost and nothing is delivered twice.
func stopAndRestart(t *testing.T, name string, service []string, stop func(p *proc, round int)) {
	bin := fluentBit(t)
	t.Setenv("FLB_DEV_RB_MS", "3000")
	start := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	s := newDeliverySetup(t, name, start, 300, service...)
	want := testenv.Seed(s.c.srv, 71, 3000, start.Add(time.Second), 20*time.Second)

	p := startFluentBit(t, bin, "-c", s.conf)
	for round := 1; round <= 3; round++ {
		waitLines(t, p, s.outFile, round*300, 2*time.Minute)
		// Lines appear within a second after the ring buffer was moved into
		// chunks; 1.2 s later at least one collect (every second) has put a
		// batch on the ring buffer, which is moved next only 3 s after the
		// last time. The stop lands in that window: this wait is the test.
		time.Sleep(1200 * time.Millisecond)
		stop(p, round)
		if p.cmd.ProcessState != nil {
			p = startFluentBit(t, bin, "-c", s.conf)
		}
	}
	require.Less(t, len(uidsIn(t, s.outFile)), len(want), "stopped during the export")
	waitLines(t, p, s.outFile, len(want), 90*time.Second)
	p.stop(t, 30*time.Second)
	got := uidsIn(t, s.outFile)
	missing, dups, _ := missingAndDuplicates(want, got)
	t.Logf("%d events: %d missing, %d duplicates", len(want), missing, dups)
	requireExactlyOnce(t, want, got)
	require.Contains(t, p.output(), "resuming from the position saved in db")
}

// SIGTERM: Fluent Bit pauses the input, runs its engine through the grace
// period and exits the input; a batch still on the ring buffer then is
// dropped by Fluent Bit and fetched again at the next start.
func TestSIGTERMWithBatchOnRingBufferWithRealFluentBit(t *testing.T) {
	stopAndRestart(t, "term.example.com", nil, func(p *proc, _ int) { p.stop(t, 30*time.Second) })
}

// Hot reload (SIGHUP): the same exit path inside one process.
func TestHotReloadWithBatchOnRingBufferWithRealFluentBit(t *testing.T) {
	stopAndRestart(t, "hup.example.com", []string{"Hot_Reload On"}, func(p *proc, round int) {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
		// Each Init logs its settings: one more line per reload.
		waitOutput(t, p, "[input:teleport:kill] settings:", round+1, time.Minute)
	})
}

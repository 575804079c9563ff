package e2e

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/procstat"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

var backfillEvents = flag.Int("backfill-events", 200000, "events for BenchmarkRealFluentBitBackfill")

// BenchmarkRealFluentBitBackfill exports a backlog through a real fluent-bit
// with the plugin's default batch limits (Fluent Bit calls the plugin once a
// second, so the limits set the pace) and reports events/s, CPU per event
// and peak RSS of the whole fluent-bit process.
func BenchmarkRealFluentBitBackfill(b *testing.B) {
	bin := fluentBit(b)
	so := testenv.PluginSO(b)
	for i := 0; i < b.N; i++ {
		srv := testenv.Fake(b, teleportfake.Config{})
		start := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
		testenv.Seed(srv, 1, *backfillEvents, start.Add(time.Second), 48*time.Hour/time.Duration(*backfillEvents))
		id := testenv.Identity(b, srv, teleportfake.IdentityOptions{})
		_, port, _ := net.SplitHostPort(testenv.FreeAddr(b))
		dir := b.TempDir()

		begin := time.Now()
		p := startFluentBit(b, bin, "-e", so, "-H", "-P", fmt.Sprint(port), "-f", "1",
			"-i", "teleport", "-p", "addr="+srv.Addr(), "-p", "identity_file="+id, "-p", "db="+filepath.Join(dir, "db"),
			"-p", "start_time="+start.Format(time.RFC3339), "-o", "null", "-m", "*")
		waitUntil(b, p, 10*time.Minute,
			func() string { return fmt.Sprintf("%d of %d events", inputRecords(port), *backfillEvents) },
			func() bool { return inputRecords(port) >= *backfillEvents })
		elapsed := time.Since(begin)
		cpu, _ := procstat.CPUTime(p.cmd.Process.Pid)
		hwm, _ := procstat.StatusKB(p.cmd.Process.Pid, "VmHWM")
		rate := float64(*backfillEvents) / elapsed.Seconds()
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(*backfillEvents), "cpu-µs/event")
		b.ReportMetric(float64(hwm)/1024, "peak-RSS-MB")
		fmt.Printf("real fluent-bit backfill: %d events in %s (%.0f events/s, start-up included), %.1f µs CPU per event, peak RSS %.1f MB\n",
			*backfillEvents, elapsed.Round(time.Millisecond), rate, float64(cpu.Microseconds())/float64(*backfillEvents), float64(hwm)/1024)
	}
}

// inputRecords asks Fluent Bit's HTTP server how many records its inputs took.
func inputRecords(port string) int {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%s/api/v1/metrics", port))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var m struct {
		Input map[string]struct {
			Records int `json:"records"`
		} `json:"input"`
	}
	if json.NewDecoder(resp.Body).Decode(&m) != nil {
		return 0
	}
	total := 0
	for _, in := range m.Input {
		total += in.Records
	}
	return total
}

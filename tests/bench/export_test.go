// Package bench measures the export through the built .so (make bench).
package bench

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/procstat"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

var (
	events   = flag.Int("events", 200000, "events to export")
	pageSize = flag.String("page-size", "", "page_size setting (default: the plugin's)")
	interval = flag.Duration("interval", time.Millisecond, "pause between collect callbacks: short, so the host drains as fast as the plugin allows without spinning (Fluent Bit uses 1s)")
)

// BenchmarkExport exports -events events from the Teleport test double
// through the plugin .so, with the host draining as fast as the plugin
// allows, and reports throughput, the host process's CPU per event, its peak
// RSS, the RSS of Badger's files, and records per callback.
func BenchmarkExport(b *testing.B) {
	for i := 0; i < b.N; i++ {
		exportOnce(b)
	}
}

func exportOnce(b *testing.B) {
	b.StopTimer()
	srv := testenv.Fake(b, teleportfake.Config{})
	start := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	step := 48 * time.Hour / time.Duration(*events)
	testenv.Seed(srv, 1, *events, start.Add(time.Second), step)
	id := testenv.Identity(b, srv, teleportfake.IdentityOptions{})
	db := filepath.Join(b.TempDir(), "db")

	h := flbhost.Start(b, testenv.PluginSO(b), flbhost.Options{RecordsPath: os.DevNull})
	props := map[string]string{"addr": srv.Addr(), "identity_file": id, "db": db, "start_time": start.Format(time.RFC3339)}
	if *pageSize != "" {
		props["page_size"] = *pageSize
	}
	cpu0 := must(procstat.CPUTime(h.PID()))
	b.StartTimer()
	begin := time.Now()
	idx, err := h.Init(props)
	if err != nil {
		b.Fatalf("init: %v\n%s", err, h.Log())
	}
	res, err := h.Drain(idx, *events, 10*time.Minute, *interval)
	if err != nil {
		b.Fatalf("drain: %v\n%s", err, h.Log())
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	cpu := must(procstat.CPUTime(h.PID())) - cpu0
	hwm := must(procstat.StatusKB(h.PID(), "VmHWM"))
	badger := must(procstat.MappedKB(h.PID(), db))
	st, err := h.Stats()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := h.Quit(); err != nil {
		b.Fatalf("quit: %v", err)
	}

	rate := float64(res.Records) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(res.Records), "cpu-µs/event")
	b.ReportMetric(float64(hwm)/1024, "peak-RSS-MB")
	b.ReportMetric(float64(badger)/1024, "badger-files-RSS-MB")
	b.ReportMetric(float64(res.Records)/float64(res.Buffers), "records/callback")
	fmt.Printf("exported %d events in %s: %.0f events/s, %.1f µs CPU per event (host process: plugin + host validation), peak RSS %.1f MB, Badger files %.1f MB, %d callbacks with data (%.0f records each, max collect %s), %d server queries\n",
		res.Records, elapsed.Round(time.Millisecond), rate, float64(cpu.Microseconds())/float64(res.Records), float64(hwm)/1024,
		float64(badger)/1024, res.Buffers, float64(res.Records)/float64(res.Buffers), st.MaxCollect, srv.CallCount("/teleport.auditlog.v1.AuditLogService/GetUnstructuredEvents"))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

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

// BenchmarkExport exports -events audit events from the Teleport test
// double through the plugin .so with windowed search (export_mode search),
// with the host draining as fast as the plugin allows, and reports
// throughput, the host process's CPU per event, its peak RSS, the RSS of
// Badger's files, and records per callback.
func BenchmarkExport(b *testing.B) {
	for i := 0; i < b.N; i++ {
		measure(b, "search", teleportfake.Config{}, seedAudit, map[string]string{"export_mode": "search"})
	}
}

// BenchmarkExportBulk is BenchmarkExport through the bulk export API.
func BenchmarkExportBulk(b *testing.B) {
	for i := 0; i < b.N; i++ {
		measure(b, "bulk", teleportfake.Config{BulkExport: true, ChunkSize: 5000}, seedAudit, map[string]string{"export_mode": "bulk"})
	}
}

// BenchmarkExportSessions exports session recordings: -events recording
// events in recordings of 2,000, every event type included.
func BenchmarkExportSessions(b *testing.B) {
	for i := 0; i < b.N; i++ {
		measure(b, "sessions", teleportfake.Config{}, seedSessions, map[string]string{"sessions": "on", "skip_session_types": "none", "session_concurrency": "5"})
	}
}

// seedAudit appends n audit events over two days; it returns how many
// records the export hands over.
func seedAudit(srv *teleportfake.Server, start time.Time, n int) int {
	testenv.Seed(srv, 1, n, start.Add(time.Second), 48*time.Hour/time.Duration(n))
	return n
}

// seedSessions adds recordings of 2,000 events and their session.upload
// events: n recording events plus one audit event per recording.
func seedSessions(srv *teleportfake.Server, start time.Time, n int) int {
	gen := teleportfake.NewGenerator(2)
	count := n / 2000
	for i := 0; i < count; i++ {
		sid := fmt.Sprintf("bench-%04d", i)
		rec, upload := gen.Session(sid, start.Add(time.Duration(i)*time.Minute), 2000)
		srv.AddSession(sid, rec)
		srv.Append(upload)
	}
	return count*2000 + count
}

func measure(b *testing.B, name string, cfg teleportfake.Config, seed func(*teleportfake.Server, time.Time, int) int, extra map[string]string) {
	b.StopTimer()
	srv := testenv.Fake(b, cfg)
	start := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	want := seed(srv, start, *events)
	id := testenv.Identity(b, srv, teleportfake.IdentityOptions{})
	db := filepath.Join(b.TempDir(), "db")

	// A 1 ms ring buffer, like the 1 ms collect interval: the plugin's own
	// speed, not Fluent Bit's timers (one batch is in flight at a time).
	h := flbhost.Start(b, testenv.PluginSO(b), flbhost.Options{RecordsPath: os.DevNull, HotReload: true, RingBuffer: time.Millisecond})
	props := map[string]string{"addr": srv.Addr(), "identity_file": id, "db": db, "start_time": start.Format(time.RFC3339)}
	if *pageSize != "" {
		props["page_size"] = *pageSize
	}
	for k, v := range extra {
		props[k] = v
	}
	cpu0 := must(procstat.CPUTime(h.PID()))
	b.StartTimer()
	begin := time.Now()
	idx, err := h.Init(props)
	if err != nil {
		b.Fatalf("init: %v\n%s", err, h.Log())
	}
	res, err := h.Drain(idx, want, 10*time.Minute, *interval)
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
	// Hot reload and shutdown latencies, caught up, as Fluent Bit's thread
	// sees them (the product requirement: within a second).
	reload, err := h.Reload()
	if err != nil {
		b.Fatalf("reload: %v\n%s", err, h.Log())
	}
	quit, err := h.Quit()
	if err != nil {
		b.Fatalf("quit: %v", err)
	}

	rate := float64(res.Records) / elapsed.Seconds()
	perEvent := float64(cpu.Microseconds()) / float64(res.Records)
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(perEvent, "cpu-µs/event")
	b.ReportMetric(float64(hwm)/1024, "peak-RSS-MB")
	b.ReportMetric(float64(badger)/1024, "badger-files-RSS-MB")
	b.ReportMetric(float64(res.Records)/float64(res.Buffers), "records/callback")
	b.ReportMetric(float64(st.MaxCollect.Microseconds())/1000, "max-collect-ms")
	b.ReportMetric(float64(reload.Elapsed.Milliseconds()), "reload-ms")
	b.ReportMetric(float64(quit.Elapsed.Milliseconds()), "shutdown-ms")
	fmt.Printf("%s: exported %d events in %s: %.0f events/s, %.1f µs CPU per event (host process: plugin + host validation), peak RSS %.1f MB, Badger files %.1f MB, %d callbacks with data (%.0f records each, max collect %s), hot reload %s, shutdown %s\n",
		name, res.Records, elapsed.Round(time.Millisecond), rate, perEvent, float64(hwm)/1024,
		float64(badger)/1024, res.Buffers, float64(res.Records)/float64(res.Buffers), st.MaxCollect, reload.Elapsed, quit.Elapsed)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

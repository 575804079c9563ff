package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/client"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/conf"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/procstat"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/realauth"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

var (
	realLogs   = flag.String("real-events", "20000,100000", "BenchmarkRealTeleport: sizes of the audit logs, each spread over 7 days")
	liveFor    = flag.Duration("live-for", 30*time.Second, "BenchmarkRealTeleport: how long the live stream runs")
	liveRate   = 20 // events a second in the live stream
	liveLogLen = 20000
)

// BenchmarkRealTeleport measures a backfill against a real Teleport 13.3.8
// Auth Service (tests/realauth, file audit log) at the plugin's default
// settings, side by side with what the server gives a bare API client in
// the same run, and prints one line per figure:
//   - the server's page rate, paged alone by a bare api client through
//     windows ending at UTC midnight, at the plugin's page size and at
//     10,000, and by the plugin's own wire client (no decoding) at 10,000;
//   - the plugin's rate through tests/host (collecting every millisecond:
//     the plugin's own pace) and through the real fluent-bit when
//     FLUENT_BIT is set (Fluent Bit collects once a second), from start to
//     the last record taken, and the fluent-bit's peak RSS;
//   - the ratios to the best of those server rates;
//   - on the 20,000-event log, the lag (p50, p99) of a live stream of 20
//     events a second through the host collecting once a second like
//     Fluent Bit, and the Auth Service's CPU seconds per minute meanwhile.
func BenchmarkRealTeleport(b *testing.B) {
	so := testenv.PluginSO(b)
	defaults := conf.Defaults()
	pageSize, err := strconv.Atoi(defaults["page_size"])
	require.NoError(b, err)
	for i := 0; i < b.N; i++ {
		for _, f := range strings.Split(*realLogs, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			require.NoError(b, err, "-real-events %q", *realLogs)
			benchRealLog(b, so, n, pageSize)
		}
	}
}

func benchRealLog(b *testing.B, so string, n, pageSize int) {
	began := time.Now()
	rt := realauth.Start(b, realauth.Options{Events: n, Days: 7})
	label := fmt.Sprintf("real Teleport, %d events over 7 days:", n)
	fmt.Printf("%s seeded in %s\n", label, time.Since(began).Round(time.Second))

	// The day files were just written: they are in the page cache, as a
	// running server's recent days are.
	clt := rt.Client(b)
	_, err := clt.Ping(context.Background()) // connected before the clock starts
	require.NoError(b, err)
	total, best, bareBest := 0, 0.0, 0.0
	for _, size := range []int{pageSize, conf.MaxPageSize} {
		if size == pageSize && size == conf.MaxPageSize && total > 0 {
			fmt.Printf("%s server page rate, bare client, page size %d: the same measurement (the plugin's page size is %d)\n", label, size, pageSize)
			continue
		}
		got, pages, d := pageServer(b, rt.Start(), size, apiPages(clt))
		require.True(b, total == 0 || got == total, "the bare client reads the same events each time")
		total = got
		rate := float64(got) / d.Seconds()
		best, bareBest = max(best, rate), max(bareBest, rate)
		fmt.Printf("%s server page rate, bare client, page size %d: %.0f events/s (%d events, %d pages, %s)\n",
			label, size, rate, got, pages, d.Round(time.Millisecond))
	}
	// The api client decodes every event into a protobuf Struct, which on 2
	// busy cores can cost more than the server's work: the plugin's own
	// client, which only frames the pages, shows what the server gives.
	got, pages, d := pageServer(b, rt.Start(), conf.MaxPageSize, wirePages(b, rt))
	require.Equal(b, total, got, "the wire client reads the same events")
	rate := float64(got) / d.Seconds()
	best = max(best, rate)
	fmt.Printf("%s server page rate, the plugin's wire client alone, page size %d: %.0f events/s (%d pages, %s)\n",
		label, conf.MaxPageSize, rate, pages, d.Round(time.Millisecond))
	fmt.Printf("%s server best page rate: %.0f events/s\n", label, best)

	fbRate := 0.0
	if bin := os.Getenv("FLUENT_BIT"); bin != "" {
		var hwm int64
		fbRate, hwm = backfillFluentBit(b, bin, so, rt, total)
		fmt.Printf("%s plugin rate via fluent-bit: %.0f events/s (from its launch), peak RSS %.1f MB\n", label, fbRate, float64(hwm)/1024)
	} else {
		fmt.Printf("%s plugin rate via fluent-bit: SKIPPED (FLUENT_BIT is not set)\n", label)
	}

	h := flbhost.Start(b, so, flbhost.Options{RecordsPath: filepath.Join(b.TempDir(), "records")})
	begin := time.Now()
	idx, err := h.Init(defaultProps(rt, filepath.Join(b.TempDir(), "db")))
	require.NoError(b, err, h.Log())
	res, err := h.Drain(idx, total, 5*time.Minute, time.Millisecond)
	require.NoError(b, err, h.Log())
	hostRate := float64(res.Records) / time.Since(begin).Seconds()
	fmt.Printf("%s plugin rate via tests/host: %.0f events/s (from Init)\n", label, hostRate)

	fmt.Printf("%s ratio tests/host / server: %.2f\n", label, hostRate/best)
	if fbRate > 0 {
		fmt.Printf("%s ratio fluent-bit / server: %.2f (against the best rate, the wire client's included; issue 10 asks at least 0.80)\n", label, fbRate/best)
		// The issue's own measure: the bare api client's best page rate.
		fmt.Printf("%s ratio fluent-bit / bare api client: %.2f (issue 10 asks at least 0.80)\n", label, fbRate/bareBest)
		b.ReportMetric(fbRate/best, fmt.Sprintf("fb-ratio-%d", n))
	}
	b.ReportMetric(hostRate/best, fmt.Sprintf("host-ratio-%d", n))
	if n == liveLogLen {
		liveStream(b, rt, h, idx, label)
	}
}

// defaultProps are the settings a new user writes: where, who, and from
// when; everything else at its default.
func defaultProps(rt *realauth.Server, db string) map[string]string {
	return map[string]string{"addr": rt.Addr, "identity_file": rt.Identity, "db": db, "start_time": rt.Start().Format(time.RFC3339)}
}

// pageFunc asks one page: the number of events and the next page key.
type pageFunc func(ctx context.Context, from, to time.Time, size int, key string) (int, string, error)

// apiPages pages through the Teleport api client.
func apiPages(clt *client.Client) pageFunc {
	return func(ctx context.Context, from, to time.Time, size int, key string) (int, string, error) {
		page, next, err := clt.SearchUnstructuredEvents(ctx, from, to, "default", nil, size, types.EventOrderAscending, key)
		return len(page), next, err
	}
}

// wirePages pages through the plugin's own client (teleportsrc), which
// reads pages as raw protobuf.
func wirePages(b testing.TB, rt *realauth.Server) pageFunc {
	creds := teleportsrc.NewCredentials(teleportsrc.CredentialFiles{Identity: rt.Identity})
	_, _, err := creds.Load()
	require.NoError(b, err)
	clt, err := teleportsrc.Dial(context.Background(), rt.Addr, creds, 10*time.Second)
	require.NoError(b, err)
	b.Cleanup(func() { clt.Close() })
	_, err = clt.Ping(context.Background())
	require.NoError(b, err)
	return func(ctx context.Context, from, to time.Time, size int, key string) (int, string, error) {
		req := &auditlogpb.GetUnstructuredEventsRequest{}
		req.SetNamespace("default")
		req.SetStartDate(timestamppb.New(from))
		req.SetEndDate(timestamppb.New(to))
		req.SetLimit(int32(size))
		req.SetStartKey(key)
		req.SetOrder(auditlogpb.Order(types.EventOrderAscending)) // as the api client sends it
		page, err := clt.SearchEvents(ctx, req)
		defer page.Free()
		return len(page.Events), page.LastKey, err
	}
}

// pageServer reads every event from start to now, one query after the
// other, in windows ending at UTC midnight (the fewest day files per
// query), following the page keys.
func pageServer(b testing.TB, start time.Time, size int, ask pageFunc) (events, pages int, took time.Duration) {
	ctx := context.Background()
	now := time.Now().UTC()
	begin := time.Now()
	for from := start; from.Before(now); {
		to := from.Truncate(24 * time.Hour).Add(24 * time.Hour)
		if to.After(now) {
			to = now
		}
		for key := ""; ; {
			n, next, err := ask(ctx, from, to, size, key)
			require.NoError(b, err)
			events += n
			pages++
			if next == "" {
				break
			}
			key = next
		}
		from = to
	}
	return events, pages, time.Since(begin)
}

// backfillFluentBit runs a real fluent-bit with the plugin at its defaults
// until its file output holds total records, and returns the rate from its
// launch and its peak RSS in KB. The output writes one short line per
// record (template {uid}) and flushes every 50 ms instead of every second,
// and the file is watched every 10 ms, so the time the records reached the
// output is known to within 60 ms. Fluent Bit's HTTP metrics would not do:
// they are refreshed once a second (src/flb_metrics_exporter.c,
// flb_me_create).
func backfillFluentBit(b *testing.B, bin, so string, rt *realauth.Server, total int) (float64, int64) {
	dir := b.TempDir()
	args := []string{"-e", so, "-f", "0.05", "-i", "teleport"}
	for k, v := range defaultProps(rt, filepath.Join(dir, "db")) {
		args = append(args, "-p", k+"="+v)
	}
	out := filepath.Join(dir, "uids")
	begin := time.Now()
	p := startFluentBit(b, bin, append(args, "-o", "file", "-m", "*", "-p", "path="+dir, "-p", "file=uids",
		"-p", "format=template", "-p", "template={uid}")...)
	lines, read := 0, int64(0)
	for deadline := time.Now().Add(5 * time.Minute); lines < total; time.Sleep(10 * time.Millisecond) {
		select {
		case <-p.done:
			b.Fatalf("fluent-bit exited before its output had %d records:\n%s", total, p.output())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("fluent-bit's output had %d of %d records after 5 minutes:\n%s", lines, total, p.output())
		}
		lines += countNewLines(b, out, &read)
	}
	took := time.Since(begin)
	hwm, err := procstat.StatusKB(p.cmd.Process.Pid, "VmHWM")
	require.NoError(b, err)
	require.NoError(b, p.cmd.Process.Kill())
	<-p.done
	return float64(total) / took.Seconds(), hwm
}

// countNewLines counts the line ends written to path after offset *read,
// and moves *read past them.
func countNewLines(b *testing.B, path string, read *int64) int {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0
	}
	require.NoError(b, err)
	defer f.Close()
	buf, err := io.ReadAll(io.NewSectionReader(f, *read, 1<<40))
	require.NoError(b, err)
	*read += int64(len(buf))
	return bytes.Count(buf, []byte{'\n'})
}

// liveStream writes liveRate events a second for -live-for while the host
// collects once a second, as Fluent Bit's Go proxy does
// (src/flb_plugin_proxy.c, flb_proxy_input_cb_init: a collector timer of
// PROXY_CALLBACK_TIME, 1 second), and prints the lag from each event's time
// to the collect that handed it over, and the Auth Service's CPU use.
func liveStream(b *testing.B, rt *realauth.Server, h *flbhost.Host, idx int, label string) {
	before := len(rt.Manifest(b).List)
	backfill, err := h.Records()
	require.NoError(b, err)
	frames := 0
	if len(backfill) > 0 {
		frames = backfill[len(backfill)-1].Frame + 1
	}
	cpu0, err := procstat.CPUTime(rt.PID())
	require.NoError(b, err)
	stop := make(chan struct{})
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		tick := time.NewTicker(time.Second / time.Duration(liveRate))
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				rt.EmitFast(b, 1)
			}
		}
	}()
	// collectedAt[i] is when frame i was handed over.
	collectedAt := map[int]time.Time{}
	began := time.Now()
	tick := time.NewTicker(time.Second)
	var tailed time.Duration
	for t := range tick.C {
		if tailed == 0 && t.Sub(began) > *liveFor {
			close(stop)
			<-emitted
			tailed = time.Since(began)
		}
		if t.Sub(began) > *liveFor+3*time.Second {
			break // the last events written have had their time
		}
		res, err := h.Collect(idx, 1)
		require.NoError(b, err, h.Log())
		for j := 0; j < res.Buffers; j++ {
			collectedAt[frames+j] = time.Now()
		}
		frames += res.Buffers
	}
	tick.Stop()
	cpu1, err := procstat.CPUTime(rt.PID())
	require.NoError(b, err)

	stream := rt.Manifest(b).List[before:]
	recs, err := h.Records()
	require.NoError(b, err)
	frameOf := map[string]int{}
	for _, r := range recs {
		uid, _ := r.Body["uid"].(string)
		frameOf[uid] = r.Frame
	}
	var lags []time.Duration
	for _, e := range stream {
		f, ok := frameOf[e.UID]
		if !ok {
			continue // written after the last collect
		}
		lags = append(lags, collectedAt[f].Sub(e.Time))
	}
	require.Len(b, lags, len(stream), "every event of the stream arrived")
	slices.Sort(lags)
	p := func(q float64) time.Duration { return lags[int(q*float64(len(lags)-1))].Round(10 * time.Millisecond) }
	fmt.Printf("%s live stream of %d events/s, lag p50: %s (%d events over %s; includes Fluent Bit's 1 s collect tick)\n", label, liveRate, p(0.5), len(lags), tailed.Round(time.Second))
	fmt.Printf("%s live stream of %d events/s, lag p99: %s\n", label, liveRate, p(0.99))
	fmt.Printf("%s Auth Service CPU while the plugin tails the stream: %.1f s/min (writing the stream included)\n", label, (cpu1-cpu0).Seconds()/time.Since(began).Minutes())
}

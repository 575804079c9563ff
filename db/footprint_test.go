package db

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/procstat"
)

// BenchmarkFootprint reports what an open store costs the process, its Go
// heap and the resident part of its mapped files, after a day's worth of
// position commits (one a second) with tails of 50 uids.
func BenchmarkFootprint(b *testing.B) {
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		dir := b.TempDir()
		s, err := Open(dir, testLog{b})
		if err != nil {
			b.Fatal(err)
		}
		sp := s.Space("cluster/teleport.0")
		tail := strings.Repeat(`"6d2a6f9c-2f1e-4d8e-9d4b-1c8a3b7e0f21",`, 50)
		for n := 0; n < 86400; n++ {
			if err := sp.Commit([]Mark{mark{"search", fmt.Sprintf(`{"from":%d,"tail":[%s]}`, n, tail)}}, nil); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		mapped, err := procstat.MappedKB(os.Getpid(), dir)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "heap-MB")
		b.ReportMetric(float64(mapped)/1024, "mapped-files-MB")
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

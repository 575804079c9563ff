package teleportfake

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/client"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

const benchEvents = 200_000

var bench struct {
	srv *Server
	clt *client.Client
}

// benchSetup seeds one server for all runs of the benchmark (the process
// ends after the benchmarks, which closes it).
func benchSetup(b *testing.B) {
	if bench.srv != nil {
		return
	}
	start := time.Now()
	evs := NewGenerator(100).Events(benchEvents, t0, 10*time.Millisecond)
	generated := time.Since(start)
	s, err := Start(Config{})
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	s.Append(evs...)
	b.Logf("generate %d events: %v; Append: %v", benchEvents, generated, time.Since(start))
	path := filepath.Join(b.TempDir(), "identity")
	if err := s.WriteIdentityFile(path, IdentityOptions{}); err != nil {
		b.Fatal(err)
	}
	clt, err := dial(s, path, dialTimeout)
	if err != nil {
		b.Fatal(err)
	}
	bench.srv, bench.clt = s, clt
}

// BenchmarkSearch pulls 200,000 generated events through the real client with
// SearchUnstructuredEvents (limit 10000, ascending, 1 MiB page cap) and
// reports the rate.
func BenchmarkSearch(b *testing.B) {
	benchSetup(b)
	ctx := context.Background()
	from, to := t0, t0.Add(benchEvents*10*time.Millisecond)
	total, pages := 0, 0
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		key := ""
		for {
			items, next, err := bench.clt.SearchUnstructuredEvents(ctx, from, to, "default", nil, 10000, types.EventOrderAscending, key)
			if err != nil {
				b.Fatal(err)
			}
			total += len(items)
			pages++
			if next == "" {
				break
			}
			key = next
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if total != b.N*benchEvents {
		b.Fatalf("got %d events, want %d", total, b.N*benchEvents)
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(total)/float64(pages), "events/page")
}

// rawCodec sends protobuf requests and hands back responses undecoded.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, err := proto.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// rawPage counts the items of an undecoded EventsUnstructured and finds last_key.
func rawPage(b []byte) (items int, lastKey string) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if num == 1 {
			items++
		} else if num == 2 {
			v, _ := protowire.ConsumeBytes(b)
			lastKey = string(v)
		}
		b = b[n:]
	}
	return items, lastKey
}

// BenchmarkSearchServerOnly is BenchmarkSearch over the same connection but
// without decoding the responses, which measures what the fake itself
// (and gRPC + TLS) can serve; BenchmarkSearch is bounded by the real
// client's decoding of google.protobuf.Struct.
func BenchmarkSearchServerOnly(b *testing.B) {
	benchSetup(b)
	ctx := context.Background()
	conn := bench.clt.GetConnection()
	from, to := t0, t0.Add(benchEvents*10*time.Millisecond)
	total := 0
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		key := ""
		for {
			req := &auditlogpb.GetUnstructuredEventsRequest{
				Namespace: "default", StartDate: timestamppb.New(from), EndDate: timestamppb.New(to),
				Limit: 10000, StartKey: key,
			}
			var resp []byte
			if err := conn.Invoke(ctx, MethodGetUnstructuredEvents, req, &resp, grpc.ForceCodecV2(rawCodec{})); err != nil {
				b.Fatal(err)
			}
			n, next := rawPage(resp)
			total += n
			if next == "" {
				break
			}
			key = next
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if total != b.N*benchEvents {
		b.Fatalf("got %d events, want %d", total, b.N*benchEvents)
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
}

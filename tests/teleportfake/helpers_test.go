package teleportfake

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/client"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"github.com/stretchr/testify/require"
)

const dialTimeout = 5 * time.Second

var t0 = time.Date(2026, 7, 30, 10, 0, 0, 0, time.UTC)

func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connect writes an identity file and connects the real API client with it.
func connect(t testing.TB, s *Server, o IdentityOptions) *client.Client {
	t.Helper()
	path := filepath.Join(t.TempDir(), "identity")
	require.NoError(t, s.WriteIdentityFile(path, o))
	clt, err := dial(s, path, dialTimeout)
	require.NoError(t, err)
	t.Cleanup(func() { clt.Close() })
	return clt
}

func dial(s *Server, identityPath string, timeout time.Duration) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*timeout)
	defer cancel()
	return client.New(ctx, client.Config{
		Addrs:       []string{s.Addr()},
		Credentials: []client.Credentials{client.LoadIdentityFile(identityPath)},
		DialTimeout: timeout,
	})
}

// pageResult is one page of SearchUnstructuredEvents.
type pageResult struct {
	ids []string
	key string
}

// searchAll pages through SearchUnstructuredEvents until the key is empty.
func searchAll(t testing.TB, clt *client.Client, from, to time.Time, eventTypes []string, limit int, order types.EventOrder) ([]*auditlogpb.EventUnstructured, []pageResult) {
	t.Helper()
	ctx := testContext(t)
	var all []*auditlogpb.EventUnstructured
	var pages []pageResult
	key := ""
	for range 10000 {
		items, next, err := clt.SearchUnstructuredEvents(ctx, from, to, "default", eventTypes, limit, order, key)
		require.NoError(t, err)
		p := pageResult{key: next}
		for _, it := range items {
			p.ids = append(p.ids, it.GetId())
		}
		pages = append(pages, p)
		all = append(all, items...)
		if next == "" {
			return all, pages
		}
		key = next
	}
	t.Fatal("paging did not end")
	return nil, nil
}

func ids(items []*auditlogpb.EventUnstructured) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.GetId()
	}
	return out
}

// drain reads a session stream until it ends; it fails the test after a deadline.
func drain[T any](t testing.TB, open func() (chan T, chan error)) ([]T, error) {
	t.Helper()
	ch, errCh := open()
	var out []T
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case v, ok := <-ch:
			if !ok {
				return out, nil
			}
			out = append(out, v)
		case err := <-errCh:
			return out, err
		case <-deadline.C:
			t.Fatal("stream did not end")
		}
	}
}

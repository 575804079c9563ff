// Package integration drives the built plugin .so through the test host
// (Fluent Bit's Go-proxy ABI) against the Teleport test double.
package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// env is one cluster double plus the files an input needs.
type env struct {
	srv      *teleportfake.Server
	identity string
	db       string
}

func newEnv(t *testing.T, cfg teleportfake.Config) *env {
	srv := testenv.Fake(t, cfg)
	return &env{srv: srv, identity: testenv.Identity(t, srv, teleportfake.IdentityOptions{}), db: filepath.Join(t.TempDir(), "db")}
}

// props are the settings of an input reading this env from start.
func (e *env) props(start time.Time, kv ...string) map[string]string {
	p := map[string]string{
		"addr": e.srv.Addr(), "identity_file": e.identity, "db": e.db,
		"start_time": start.UTC().Format(time.RFC3339), "dial_timeout": "5s", "poll_interval": "100ms",
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(p, kv[i])
		} else {
			p[kv[i]] = kv[i+1]
		}
	}
	return p
}

func host(t *testing.T, opts flbhost.Options) *flbhost.Host {
	return flbhost.Start(t, testenv.PluginSO(t), opts)
}

func initOK(t *testing.T, h *flbhost.Host, props map[string]string) int {
	t.Helper()
	idx, err := h.Init(props)
	require.NoError(t, err, "init failed; plugin log:\n%s", h.Log())
	return idx
}

// uids returns the records' uid fields in order.
func uids(recs []flbhost.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i], _ = r.Body["uid"].(string)
	}
	return out
}

func records(t *testing.T, h *flbhost.Host) []flbhost.Record {
	t.Helper()
	recs, err := flbhost.ReadRecords(h.RecordsPath())
	require.NoError(t, err)
	return recs
}

// logHas polls the plugin log for a fragment.
func logHas(t *testing.T, h *flbhost.Host, timeout time.Duration, fragment string) {
	t.Helper()
	testenv.Eventually(t, timeout, "log line containing "+fragment, func() bool {
		h.Collect(0, 1) // callbacks flush the lines queued by the fetcher
		return strings.Contains(h.Log(), fragment)
	})
}

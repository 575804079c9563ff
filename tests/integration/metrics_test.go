package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// Two inputs on one metrics endpoint, their counters, lag and identity,
// and the status line; the endpoint survives a hot reload.
func TestMetricsEndpointAndStatusLine(t *testing.T) {
	a := newEnv(t, teleportfake.Config{ClusterName: "alpha.example.com"})
	b := newEnv(t, teleportfake.Config{ClusterName: "beta.example.com"})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	idsA := testenv.Seed(a.srv, 70, 300, start.Add(time.Second), time.Second)
	addr := testenv.FreeAddr(t)

	h := host(t, flbhost.Options{HotReload: true})
	ia := initOK(t, h, a.props(start, "metrics_listen", addr, "status_interval", "1s"))
	initOK(t, h, b.props(start, "metrics_listen", addr))
	_, err := h.Drain(ia, len(idsA), 30*time.Second, 0)
	require.NoError(t, err, h.Log())

	testenv.Eventually(t, 10*time.Second, "caught up in the metrics", func() bool {
		h.Collect(ia, 1)
		return strings.Contains(testenv.Scrape(t, addr), `fluentbit_teleport_lag_seconds{cluster="alpha.example.com",input="teleport.0"} 0`)
	})
	body := testenv.Scrape(t, addr)
	assert.Contains(t, body, fmt.Sprintf(`fluentbit_teleport_events_total{cluster="alpha.example.com",input="teleport.0",stream="audit"} %d`, len(idsA)))
	assert.Contains(t, body, `fluentbit_teleport_connected{cluster="alpha.example.com",input="teleport.0"} 1`)
	assert.Contains(t, body, `fluentbit_teleport_info{cluster="alpha.example.com",input="teleport.0",mode="search"} 1`)
	assert.Contains(t, body, `fluentbit_teleport_identity_expiry_timestamp_seconds{cluster="alpha.example.com",input="teleport.0"}`)
	assert.Contains(t, body, `input="teleport.1"`, "the second input on the same endpoint")
	logHas(t, h, 10*time.Second, `[input:teleport:teleport.0] status: caught up (search, cluster "alpha.example.com")`)

	_, err = h.Reload()
	require.NoError(t, err, h.Log())
	testenv.Eventually(t, 10*time.Second, "metrics after the reload", func() bool {
		h.Collect(ia, 1)
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `fluentbit_teleport_connected{cluster="alpha.example.com",input="teleport.0"} 1`)
	})
}

func TestMetricsListenConflictFailsInit(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	e := newEnv(t, teleportfake.Config{})
	h := host(t, flbhost.Options{})
	_, err = h.Init(e.props(time.Now(), "metrics_listen", l.Addr().String()))
	require.Error(t, err)
	assert.Contains(t, h.Log(), "metrics_listen "+l.Addr().String()+": listen tcp")
	_, _ = h.Quit()
}

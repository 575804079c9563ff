package metrics

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

func TestEndpointSharedByInputsAndClosedWithTheLast(t *testing.T) {
	addr := testenv.FreeAddr(t)
	newest := time.Now().Add(-90 * time.Second)
	a, err := Register(addr, func() Snapshot {
		return Snapshot{Input: "prod", Cluster: "prod.example.com", Mode: "search", Connected: true, AuditEvents: 42, SessionEvents: 7,
			Bytes: 4096, NewestEvent: newest, QueuedRecords: 3, IdentityExpiry: time.Unix(1800000000, 0), SessionsPending: 2}
	})
	require.NoError(t, err)
	b, err := Register(addr, func() Snapshot {
		return Snapshot{Input: "staging", Cluster: "staging.example.com", Mode: "bulk", CaughtUp: true, Retries: 5, Blocked: true}
	})
	require.NoError(t, err)

	body := testenv.Scrape(t, addr)
	for _, want := range []string{
		`fluentbit_teleport_events_total{cluster="prod.example.com",input="prod",stream="audit"} 42`,
		`fluentbit_teleport_events_total{cluster="prod.example.com",input="prod",stream="session"} 7`,
		`fluentbit_teleport_bytes_total{cluster="prod.example.com",input="prod"} 4096`,
		`fluentbit_teleport_connected{cluster="prod.example.com",input="prod"} 1`,
		`fluentbit_teleport_identity_expiry_timestamp_seconds{cluster="prod.example.com",input="prod"} 1.8e+09`,
		`fluentbit_teleport_queued_records{cluster="prod.example.com",input="prod"} 3`,
		`fluentbit_teleport_sessions{cluster="prod.example.com",input="prod",state="pending"} 2`,
		`fluentbit_teleport_info{cluster="staging.example.com",input="staging",mode="bulk"} 1`,
		`fluentbit_teleport_retries_total{cluster="staging.example.com",input="staging"} 5`,
		`fluentbit_teleport_lag_seconds{cluster="staging.example.com",input="staging"} 0`,
		`fluentbit_teleport_blocked{cluster="staging.example.com",input="staging"} 1`,
		`fluentbit_teleport_blocked{cluster="prod.example.com",input="prod"} 0`,
	} {
		assert.Contains(t, body, want)
	}
	assert.Regexp(t, `fluentbit_teleport_lag_seconds\{cluster="prod.example.com",input="prod"\} 9\d\.\d+`, body, "not caught up: the newest event's age")

	a()
	a() // idempotent
	body = testenv.Scrape(t, addr)
	assert.NotContains(t, body, `input="prod"`)
	assert.Contains(t, body, `input="staging"`)

	b()
	_, err = http.Get("http://" + addr + "/metrics")
	require.Error(t, err, "the endpoint closes with its last input")

	// The address is free again (hot reload registers anew).
	c, err := Register(addr, func() Snapshot { return Snapshot{Input: "again"} })
	require.NoError(t, err)
	assert.Contains(t, testenv.Scrape(t, addr), `input="again"`)
	c()
}

func TestRegisterReportsABusyAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	_, err = Register(l.Addr().String(), func() Snapshot { return Snapshot{} })
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "metrics_listen "+l.Addr().String()+": "), err.Error())
}

func TestLag(t *testing.T) {
	now := time.Now()
	assert.Zero(t, Snapshot{CaughtUp: true, NewestEvent: now.Add(-time.Hour)}.Lag(now), "caught up: no lag however old the last event")
	assert.Equal(t, time.Hour, Snapshot{CaughtUp: true, QueuedRecords: 1, NewestEvent: now.Add(-time.Hour)}.Lag(now), "records waiting for Fluent Bit")
	assert.Equal(t, time.Minute, Snapshot{NewestEvent: now.Add(-time.Minute)}.Lag(now))
	assert.Zero(t, Snapshot{}.Lag(now))
}

func TestEachEndpointReportsItsOwnInputs(t *testing.T) {
	addrA := testenv.FreeAddr(t)
	a, err := Register(addrA, func() Snapshot { return Snapshot{Input: "a", Cluster: "one"} })
	require.NoError(t, err)
	defer a()
	addrB := testenv.FreeAddr(t)
	b, err := Register(addrB, func() Snapshot { return Snapshot{Input: "b", Cluster: "two"} })
	require.NoError(t, err)
	defer b()

	body := testenv.Scrape(t, addrA)
	assert.Contains(t, body, `input="a"`)
	assert.NotContains(t, body, `input="b"`)
	body = testenv.Scrape(t, addrB)
	assert.Contains(t, body, `input="b"`)
	assert.NotContains(t, body, `input="a"`)
}

package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func base() MapGetter {
	return MapGetter{"addr": "teleport.example.com:443", "identity_file": "/var/run/tbot/identity", "db": "/var/lib/fb/teleport"}
}

func with(kv ...string) MapGetter {
	g := base()
	for i := 0; i < len(kv); i += 2 {
		g[kv[i]] = kv[i+1]
	}
	return g
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse(base())
	require.NoError(t, err)
	assert.Equal(t, "teleport.example.com:443", c.Addr)
	assert.Equal(t, 24*time.Hour, c.WindowSize)
	assert.Equal(t, 10000, c.PageSize)
	assert.Equal(t, 2, c.SearchConcurrency)
	assert.Equal(t, time.Second, c.PollInterval)
	assert.Equal(t, 20000, c.BatchMaxRecords)
	assert.Equal(t, 16000000, c.BatchMaxBytes)
	assert.Equal(t, 10*time.Second, c.DialTimeout)
	assert.True(t, c.StartTime.IsZero(), "start_time defaults to now, resolved at first start")
	assert.Equal(t, ModeAuto, c.ExportMode)
	assert.Equal(t, 3, c.ExportConcurrency)
	assert.Equal(t, time.Minute, c.SettlePeriod)
	assert.False(t, c.Sessions)
	assert.Equal(t, 5, c.SessionConcurrency)
	assert.Equal(t, []string{"print", "desktop.recording"}, c.SkipSessionTypes, "as the Event Handler's since gravitational/teleport#59651")
	assert.Equal(t, FormatFields, c.Format)
	assert.Empty(t, c.MetricsListen, "metrics are opt-in")
	assert.Equal(t, time.Minute, c.StatusInterval)
	assert.Empty(t, c.Types)
	assert.Empty(t, c.SkipEventTypes)
}

func TestParseValues(t *testing.T) {
	c, err := Parse(MapGetter{
		"ADDR": "auth.example.com:3025", "Cert_File": "c.pem", "key_file": "k.pem", "ca_file": "ca.pem",
		"db": "/d", "start_time": "2026-01-02T03:04:05.999+01:00", "window_size": "1h", "page_size": "250",
		"poll_interval": "500ms", "types": " user.login, session.start ,,user.login", "skip_event_types": "cert.create",
		"batch_max_records": "5", "batch_max_bytes": "2MB", "dial_timeout": "3",
	})
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC), c.StartTime, "UTC, truncated to the second")
	assert.Equal(t, time.Hour, c.WindowSize)
	assert.Equal(t, 250, c.PageSize)
	assert.Equal(t, 500*time.Millisecond, c.PollInterval)
	assert.Equal(t, []string{"user.login", "session.start"}, c.Types)
	assert.Equal(t, []string{"cert.create"}, c.SkipEventTypes)
	assert.Equal(t, 5, c.BatchMaxRecords)
	assert.Equal(t, 2000000, c.BatchMaxBytes)
	assert.Equal(t, 3*time.Second, c.DialTimeout)
	assert.Equal(t, []string{"c.pem", "k.pem", "ca.pem"}, c.CredentialFiles())
}

func TestParseSessionAndExportSettings(t *testing.T) {
	c, err := Parse(with("export_mode", "BULK", "settle_period", "off", "sessions", "yes", "session_concurrency", "2", "skip_session_types", "none"))
	require.NoError(t, err)
	assert.Equal(t, ModeBulk, c.ExportMode)
	assert.Zero(t, c.SettlePeriod)
	assert.True(t, c.Sessions)
	assert.Equal(t, 2, c.SessionConcurrency)
	assert.Empty(t, c.SkipSessionTypes)
}

func TestParseFormat(t *testing.T) {
	c, err := Parse(with("format", "Message"))
	require.NoError(t, err)
	assert.Equal(t, FormatMessage, c.Format)
	_, err = Parse(with("format", "json"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `setting "format" = "json": not a format; accepted: fields (the event's fields as the record's) or message`)
}

func TestParseMetricsSettings(t *testing.T) {
	c, err := Parse(with("metrics_listen", "127.0.0.1:2021", "status_interval", "off"))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:2021", c.MetricsListen)
	assert.Zero(t, c.StatusInterval)
	c, err = Parse(with("metrics_listen", ":2021"))
	require.NoError(t, err)
	assert.Equal(t, ":2021", c.MetricsListen)
}

func TestParseDurationForms(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90": 90 * time.Second, "2d": 48 * time.Hour, "2D": 48 * time.Hour, "1H": time.Hour, "5m": 5 * time.Minute,
		"1h30m": 90 * time.Minute, "10s": 10 * time.Second,
	} {
		got, err := parseDuration(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Getter
		want []string // every fragment must appear
	}{
		{"missing addr", MapGetter{"identity_file": "i", "db": "d"}, []string{`setting "addr" is required`, "Proxy Service"}},
		{"addr without port", with("addr", "teleport.example.com"), []string{`"addr" = "teleport.example.com"`, "needs a host and a port", "accepted:"}},
		{"addr bad port", with("addr", "h:99999"), []string{`"addr"`, "1 to 65535"}},
		{"missing db", MapGetter{"addr": "h:1", "identity_file": "i"}, []string{`setting "db" is required`}},
		{"no credentials", MapGetter{"addr": "h:1", "db": "d"}, []string{"credentials are required", "identity_file"}},
		{"both credentials", with("cert_file", "c"), []string{`"identity_file" cannot be combined with cert_file`}},
		{"partial pair", MapGetter{"addr": "h:1", "db": "d", "cert_file": "c", "key_file": "k"}, []string{"cert_file, key_file set but ca_file missing"}},
		{"bad start_time", with("start_time", "yesterday"), []string{`"start_time" = "yesterday"`, "RFC 3339"}},
		{"bad window", with("window_size", "0s"), []string{`"window_size" = "0s"`, "out of range", "1s to 30d"}},
		{"window not a duration", with("window_size", "a day"), []string{`"window_size" = "a day"`, "not a duration"}},
		{"page too big", with("page_size", "10001"), []string{`"page_size" = "10001"`, "1 to 10000"}},
		{"page not a number", with("page_size", "lots"), []string{`"page_size" = "lots"`, "not a whole number"}},
		{"poll too fast", with("poll_interval", "10ms"), []string{`"poll_interval" = "10ms"`, "out of range"}},
		{"bad type", with("types", "user.login,drop table"), []string{`"types"`, `"drop table" is not an event type`}},
		{"bad skip", with("skip_event_types", "a/b"), []string{`"skip_event_types"`}},
		{"batch records zero", with("batch_max_records", "0"), []string{`"batch_max_records" = "0"`, "1 to 1000000"}},
		{"batch bytes garbage", with("batch_max_bytes", "16Q"), []string{`"batch_max_bytes" = "16Q"`, "not a size"}},
		{"batch bytes tiny", with("batch_max_bytes", "10"), []string{`"batch_max_bytes" = "10"`, "out of range"}},
		{"dial timeout", with("dial_timeout", "0"), []string{`"dial_timeout" = "0"`}},
		{"export mode", with("export_mode", "fast"), []string{`"export_mode" = "fast": not a mode; accepted: auto (bulk export where`}},
		{"export concurrency", with("export_concurrency", "100"), []string{`"export_concurrency" = "100"`, "1 to 32"}},
		{"settle", with("settle_period", "2d"), []string{`"settle_period" = "2d": out of range`}},
		{"sessions", with("sessions", "maybe"), []string{`"sessions" = "maybe": not on or off`}},
		{"session concurrency", with("session_concurrency", "0"), []string{`"session_concurrency" = "0"`}},
		{"start_after_uid alone", with("start_after_uid", "abc"), []string{`setting "start_after_uid" needs start_time`}},
		{"metrics listen", with("metrics_listen", "2021"), []string{`"metrics_listen" = "2021": needs a host (may be empty) and a port`}},
		{"status interval", with("status_interval", "often"), []string{`"status_interval" = "often": not a duration`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse(MapGetter{"page_size": "x", "poll_interval": "y"})
	require.Error(t, err)
	for _, k := range []string{`"addr"`, `"db"`, `"page_size"`, `"poll_interval"`, "credentials"} {
		assert.Contains(t, err.Error(), k)
	}
}

func TestUnknown(t *testing.T) {
	assert.NoError(t, Unknown([]string{"addr", "DB", "Page_Size"}))
	err := Unknown([]string{"addr", "paeg_size", "frobnicate"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown setting "paeg_size" (did you mean "page_size"?)`)
	assert.Contains(t, err.Error(), `unknown setting "frobnicate"; accepted: addr, batch_max_bytes`)
	assert.NotContains(t, err.Error(), `"frobnicate" (did you mean`)
}

func TestKeysAndDefaultsAgree(t *testing.T) {
	keys := map[string]bool{}
	for _, k := range Keys() {
		assert.Equal(t, strings.ToLower(k), k, "Fluent Bit keys are snake_case")
		keys[k] = true
	}
	for k := range Defaults() {
		assert.True(t, keys[k], k)
	}
	// Fluent Bit consumes these before the plugin sees them.
	for k := range keys {
		assert.False(t, isCoreInputKey(t, k), "%s is a key of Fluent Bit's core", k)
	}
	assert.True(t, isCoreInputKey(t, "TLS.verify"))
	assert.True(t, isCoreInputKey(t, "net.keepalive"))
	assert.False(t, isCoreInputKey(t, "tls.nonsense"))
}

// The summary logged at start-up names the credential files and never
// holds what is in them.
func TestSummaryNamesCredentialFilesNotTheirContents(t *testing.T) {
	dir := t.TempDir()
	file := func(name, marker string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("-----BEGIN PRIVATE KEY-----\n"+marker+"\n-----END PRIVATE KEY-----\n"), 0o600))
		return p
	}
	id := file("identity", "SECRET-IDENTITY-MARKER")
	c, err := Parse(with("identity_file", id))
	require.NoError(t, err)
	s := c.Summary()
	assert.Contains(t, s, "identity_file="+id)
	assert.Contains(t, s, "start_time=now")
	assert.Contains(t, s, "skip_event_types=none")
	assert.Contains(t, s, "types=all")
	assert.Contains(t, s, "skip_session_types=print,desktop.recording")
	assert.Contains(t, s, "metrics_listen=off")
	assert.NotContains(t, s, "cert_file=", "unset paths are left out")
	assert.NotContains(t, s, "SECRET-IDENTITY-MARKER")
	assert.NotContains(t, s, "PRIVATE KEY")

	cert, key, ca := file("c.pem", "SECRET-CERT-MARKER"), file("k.pem", "SECRET-KEY-MARKER"), file("ca.pem", "SECRET-CA-MARKER")
	c, err = Parse(MapGetter{"addr": "teleport.example.com:443", "db": "/var/lib/fb/teleport", "cert_file": cert, "key_file": key, "ca_file": ca})
	require.NoError(t, err)
	s = c.Summary()
	assert.Contains(t, s, "cert_file="+cert+" key_file="+key+" ca_file="+ca)
	assert.NotContains(t, s, "identity_file=")
	assert.NotContains(t, s, "SECRET-")
	assert.NotContains(t, s, "PRIVATE KEY")
}

func TestParseElectionSettings(t *testing.T) {
	c, err := Parse(base())
	require.NoError(t, err)
	assert.False(t, c.Election.Kubernetes, "off by default")
	assert.Equal(t, Election{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		HandoverInterval: 5 * time.Second, ReplayMargin: time.Minute}, c.Election)

	c, err = Parse(with("leader_election", "Kubernetes", "lease_name", "teleport-main", "lease_namespace", "logging",
		"kubeconfig", "/etc/kube.conf", "lease_duration", "6s", "renew_deadline", "4s", "retry_period", "500ms", "replay_margin", "0"))
	require.NoError(t, err)
	assert.Equal(t, Election{Kubernetes: true, LeaseName: "teleport-main", LeaseNamespace: "logging", Kubeconfig: "/etc/kube.conf",
		LeaseDuration: 6 * time.Second, RenewDeadline: 4 * time.Second, RetryPeriod: 500 * time.Millisecond,
		HandoverInterval: 5 * time.Second}, c.Election)
	assert.Contains(t, c.Summary(), "leader_election=Kubernetes lease_name=teleport-main lease_namespace=logging")

	_, err = Parse(with("leader_election", "etcd", "lease_name", "Teleport_Main", "lease_namespace", "a.b"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `setting "leader_election" = "etcd": not a leader election mode; accepted: off, or kubernetes`)
	assert.Contains(t, err.Error(), `setting "lease_name" = "Teleport_Main": not a Kubernetes object name`)
	assert.Contains(t, err.Error(), `setting "lease_namespace" = "a.b": not a Kubernetes namespace name`)

	_, err = Parse(with("leader_election", "kubernetes", "lease_duration", "10s"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "retry_period 2s, renew_deadline 10s and lease_duration 10s: each must be shorter than the next")
}

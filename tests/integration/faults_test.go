package integration

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

func TestBadSettingsFailInitWithKeyValueAndAccepted(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	for _, tc := range []struct {
		kv   []string
		want string
	}{
		{[]string{"page_size", "20000"}, `setting "page_size" = "20000": out of range; accepted: a whole number from 1 to 10000`},
		{[]string{"addr", ""}, `setting "addr" is required`},
		{[]string{"poll_interval", "soon"}, `setting "poll_interval" = "soon": not a duration`},
		{[]string{"paeg_size", "10"}, `unknown setting "paeg_size" (did you mean "page_size"?)`},
		{[]string{"cert_file", "/c.pem"}, `"identity_file" cannot be combined with cert_file`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			h := host(t, flbhost.Options{})
			_, err := h.Init(e.props(time.Now(), tc.kv...))
			require.Error(t, err)
			assert.Contains(t, h.Log(), tc.want)
			_, _ = h.Quit()
		})
	}
}

func TestAccessDeniedIsRetriedAndExplained(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	ids := testenv.Seed(e.srv, 20, 50, start.Add(time.Second), time.Second)
	e.srv.SetDeny(true)

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start))
	logHas(t, h, 15*time.Second, "access denied by Teleport at "+e.srv.Addr())
	assert.Contains(t, h.Log(), "{resources: [event, session], verbs: [list, read]}")
	assert.Contains(t, h.Log(), "retrying in")

	e.srv.SetDeny(false)
	_, err := h.Drain(idx, len(ids), 30*time.Second, 50*time.Millisecond)
	require.NoError(t, err, h.Log())
	assert.Equal(t, ids, uids(records(t, h)))
}

func TestUnreachableServerIsRetriedWithoutBlockingFluentBit(t *testing.T) {
	addr := testenv.FreeAddr(t) // nothing listens there

	e := newEnv(t, teleportfake.Config{})
	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(time.Now(), "addr", addr))
	logHas(t, h, 20*time.Second, "cannot connect: ")
	log := h.Log()
	assert.True(t, strings.Contains(log, "nothing accepts connections at "+addr) || strings.Contains(log, "no answer from Teleport at "+addr), log)

	// Fluent Bit's thread is never held: collect does not wait for the
	// dial_timeout (5 s here) or the retry backoff. The bounds are loose
	// for loaded machines; tests/bench reports the real latencies.
	begin := time.Now()
	_, err := h.Collect(idx, 5)
	require.NoError(t, err)
	assert.Less(t, time.Since(begin), 3*time.Second, "5 collects")
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Less(t, st.MaxCollect, 500*time.Millisecond, "no collect callback waited on the network")

	// Exit returns while the fetcher is between retries, without waiting
	// them out.
	q, err := h.Quit()
	require.NoError(t, err)
	assert.Less(t, q.Elapsed, 3*time.Second, "shutdown took %s", q.Elapsed)
}

func TestExpiredIdentityIsReportedAtOnce(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	expired := testenv.Identity(t, e.srv, teleportfake.IdentityOptions{NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	h := host(t, flbhost.Options{})
	initOK(t, h, e.props(time.Now(), "identity_file", expired, "dial_timeout", "60s"))
	begin := time.Now()
	logHas(t, h, 10*time.Second, "the certificate in identity file "+expired+" expired at")
	assert.Less(t, time.Since(begin), 5*time.Second, "no dial timeout wait")
	assert.Contains(t, h.Log(), "tctl auth sign")
}

// An identity renewed on disk (tbot) is picked up without a restart.
func TestRenewedIdentityIsUsedWithoutRestart(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	ids := testenv.Seed(e.srv, 21, 20, start.Add(time.Second), time.Second)
	require.NoError(t, e.srv.WriteIdentityFile(e.identity, teleportfake.IdentityOptions{NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}))

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start))
	logHas(t, h, 10*time.Second, "expired at")

	require.NoError(t, e.srv.WriteIdentityFile(e.identity, teleportfake.IdentityOptions{User: "renewed"}))
	_, err := h.Drain(idx, len(ids), 30*time.Second, 50*time.Millisecond)
	require.NoError(t, err, h.Log())
	assert.Equal(t, ids, uids(records(t, h)))
	for _, c := range e.srv.Calls() {
		assert.Equal(t, "renewed", c.User)
	}
}

// A rotation while connected: the next connection presents the new
// certificate.
func TestRotatedIdentityOnNextConnection(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	first := testenv.Seed(e.srv, 22, 10, start.Add(time.Second), time.Second)

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start))
	_, err := h.Drain(idx, len(first), 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	oldSerial := e.srv.Calls()[0].Serial

	require.NoError(t, e.srv.WriteIdentityFile(e.identity, teleportfake.IdentityOptions{User: "rotated"}))
	logHas(t, h, 10*time.Second, "loaded identity file "+e.identity)
	// Force a reconnect: the server drops the next query.
	e.srv.FailNext(getEvents, codes.Unavailable, 1)
	more := testenv.Seed(e.srv, 23, 5, time.Now(), time.Millisecond)
	_, err = h.Drain(idx, len(more), 30*time.Second, 50*time.Millisecond)
	require.NoError(t, err, h.Log())

	calls := e.srv.Calls()
	last := calls[len(calls)-1]
	assert.Equal(t, "rotated", last.User)
	assert.NotEqual(t, oldSerial, last.Serial)
	assert.Equal(t, append(first, more...), uids(records(t, h)))
}

func TestUntrustedCredentialsAreExplained(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	// The same messages teleportsrc/explain_test.go pins against this fake.
	for name, tc := range map[string]struct {
		o    teleportfake.IdentityOptions
		want string
	}{
		"client not trusted": {teleportfake.IdentityOptions{UntrustedClientCA: true}, "Teleport at " + e.srv.Addr() + " did not accept the certificate in"},
		"server not trusted": {teleportfake.IdentityOptions{WrongServerCA: true}, "the server at " + e.srv.Addr() + " is not trusted by the CA in"},
	} {
		t.Run(name, func(t *testing.T) {
			id := testenv.Identity(t, e.srv, tc.o)
			h := host(t, flbhost.Options{})
			initOK(t, h, e.props(time.Now(), "identity_file", id, "dial_timeout", "2s"))
			logHas(t, h, 20*time.Second, "cannot connect: ")
			log := h.Log()
			assert.Contains(t, log, "cannot connect: "+tc.want+" identity file "+id, "names the file")
		})
	}
}

func TestUnreadableIdentityNamesTheFile(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	missing := e.identity + ".missing"
	h := host(t, flbhost.Options{})
	initOK(t, h, e.props(time.Now(), "identity_file", missing))
	logHas(t, h, 10*time.Second, "credential file "+missing+" does not exist")

	garbage := e.identity + ".garbage"
	require.NoError(t, os.WriteFile(garbage, []byte("not an identity"), 0o600))
	h2 := host(t, flbhost.Options{})
	initOK(t, h2, e.props(time.Now(), "identity_file", garbage, "db", e.db+"-2"))
	logHas(t, h2, 10*time.Second, "identity file "+garbage+" is not a Teleport identity file")
}

func TestIdentityReadableByOthersIsWarned(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	require.NoError(t, os.Chmod(e.identity, 0o644))
	h := host(t, flbhost.Options{})
	initOK(t, h, e.props(time.Now()))
	logHas(t, h, 10*time.Second, "is readable by other users (mode 0644): run `chmod 600 "+e.identity+"`")
}

func TestLogLevelAndNoKeyMaterial(t *testing.T) {
	// Each instance reads its own cluster, so the fake's calls tell when
	// teleport.0 has connected although it logs nothing at info.
	e0 := newEnv(t, teleportfake.Config{ClusterName: "quiet.example.com"})
	e1 := newEnv(t, teleportfake.Config{ClusterName: "chatty.example.com"})
	// A warning teleport.0 does log: proof that its lines are flushed.
	require.NoError(t, os.Chmod(e0.identity, 0o644))
	h := host(t, flbhost.Options{})
	i0 := initOK(t, h, e0.props(time.Now(), "log_level", "warn"))
	i1 := initOK(t, h, e1.props(time.Now()))
	testenv.Eventually(t, 10*time.Second, "both connected and polling", func() bool {
		h.Collect(i0, 1)
		h.Collect(i1, 1)
		return e0.srv.CallCount(getEvents) >= 1 && e1.srv.CallCount(getEvents) >= 1 &&
			strings.Contains(h.Log(), "[input:teleport:teleport.1] connected")
	})
	// The connect lines were queued before the first query: these callbacks
	// flush whatever teleport.0 queued.
	_, err := h.Collect(i0, 2)
	require.NoError(t, err)
	log := h.Log()
	assert.Contains(t, log, "[input:teleport:teleport.0] credential file "+e0.identity+" is readable by other users", "teleport.0 logs at warn")
	assert.NotContains(t, log, "[input:teleport:teleport.0] settings:", "info at Init is below teleport.0's log_level")
	assert.NotContains(t, log, "[input:teleport:teleport.0] connected", "info from the fetcher is below teleport.0's log_level")
	assert.Contains(t, log, "[input:teleport:teleport.1] settings:")
	assert.Contains(t, log, `[input:teleport:teleport.1] connected to Teleport cluster "chatty.example.com"`)
	for _, id := range []string{e0.identity, e1.identity} {
		key, err := os.ReadFile(id)
		require.NoError(t, err)
		for _, line := range strings.Split(string(key), "\n") {
			if len(line) > 20 && !strings.HasPrefix(line, "-----") {
				assert.NotContains(t, log, line, "no key material in logs")
			}
		}
	}
}

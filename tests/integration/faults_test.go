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

	// Fluent Bit's thread is never held: collect answers at once.
	begin := time.Now()
	_, err := h.Collect(idx, 5)
	require.NoError(t, err)
	assert.Less(t, time.Since(begin), time.Second)
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Less(t, st.MaxCollect, 100*time.Millisecond, "no collect callback took 100 ms")

	// Exit returns promptly while the fetcher is between retries.
	q, err := h.Quit()
	require.NoError(t, err)
	assert.Less(t, q.Elapsed, time.Second, "shutdown took %s", q.Elapsed)
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
	for name, o := range map[string]teleportfake.IdentityOptions{
		"client not trusted": {UntrustedClientCA: true},
		"server not trusted": {WrongServerCA: true},
	} {
		t.Run(name, func(t *testing.T) {
			id := testenv.Identity(t, e.srv, o)
			h := host(t, flbhost.Options{})
			initOK(t, h, e.props(time.Now(), "identity_file", id, "dial_timeout", "2s"))
			logHas(t, h, 20*time.Second, "cannot connect: ")
			log := h.Log()
			assert.Contains(t, log, id, "names the file")
			assert.Regexp(t, "not trusted by the CA in|did not accept the certificate in|no answer from Teleport", log)
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
	logHas(t, h2, 10*time.Second, "cannot load identity file "+garbage)
}

func TestIdentityReadableByOthersIsWarned(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	require.NoError(t, os.Chmod(e.identity, 0o644))
	h := host(t, flbhost.Options{})
	initOK(t, h, e.props(time.Now()))
	logHas(t, h, 10*time.Second, "is readable by other users (mode 0644): run `chmod 600 "+e.identity+"`")
}

func TestLogLevelAndNoKeyMaterial(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	h := host(t, flbhost.Options{})
	props := e.props(time.Now())
	props["log_level"] = "warn"
	initOK(t, h, props)
	props2 := e.props(time.Now(), "db", e.db+"2")
	idx2 := initOK(t, h, props2)
	testenv.Eventually(t, 10*time.Second, "both connected", func() bool {
		h.Collect(idx2, 1)
		return strings.Count(h.Log(), "connected to Teleport cluster") >= 1
	})
	log := h.Log()
	assert.NotContains(t, log, "[input:teleport:teleport.0] connected", "info is below teleport.0's log_level")
	assert.Contains(t, log, "[input:teleport:teleport.1] connected")
	key, err := os.ReadFile(e.identity)
	require.NoError(t, err)
	for _, line := range strings.Split(string(key), "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") {
			assert.NotContains(t, log, line, "no key material in logs")
		}
	}
}

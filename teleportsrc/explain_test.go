package teleportsrc

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/gravitational/trace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
)

// The hints are checked against the errors the real API client returns.
func TestExplainRealClientErrors(t *testing.T) {
	srv, err := teleportfake.Start(teleportfake.Config{})
	require.NoError(t, err)
	defer srv.Close()

	dial := func(o teleportfake.IdentityOptions, addr string) (Client, error) {
		p := filepath.Join(t.TempDir(), "identity")
		require.NoError(t, srv.WriteIdentityFile(p, o))
		c := NewCredentials(CredentialFiles{Identity: p})
		_, _, err := c.Load()
		require.NoError(t, err)
		return Dial(context.Background(), addr, c, 2*time.Second)
	}
	past := teleportfake.IdentityOptions{NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}

	for name, tc := range map[string]struct {
		o    teleportfake.IdentityOptions
		want string
	}{
		"server not trusted": {teleportfake.IdentityOptions{WrongServerCA: true}, "is not trusted by the CA in identity file"},
		"client not trusted": {teleportfake.IdentityOptions{UntrustedClientCA: true}, "did not accept the certificate in identity file"},
		// TLS 1.3 reports the server's alert or, racing it, a broken pipe.
		"expired": {past, "(rejected the certificate in identity file /x as expired|did not accept the certificate in identity file /x: it is expired)"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := dial(tc.o, srv.Addr())
			require.Error(t, err)
			assert.Regexp(t, tc.want, Explain(err, srv.Addr(), "identity file /x"))
		})
	}

	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		l.Close()
		_, err = dial(teleportfake.IdentityOptions{}, addr)
		require.Error(t, err)
		assert.Contains(t, Explain(err, addr, "identity file /x"), "nothing accepts connections at "+addr)
	})

	t.Run("access denied", func(t *testing.T) {
		clt, err := dial(teleportfake.IdentityOptions{}, srv.Addr())
		require.NoError(t, err)
		defer clt.Close()
		srv.SetDeny(true)
		defer srv.SetDeny(false)
		_, err = clt.SearchEvents(context.Background(), searchRequest(nil, 10, time.Now().Add(-time.Hour), time.Now(), ""))
		require.Error(t, err)
		assert.Contains(t, Explain(err, srv.Addr(), "identity file /x"), "access denied by Teleport at "+srv.Addr()+": "+RoleHint)
	})
}

func TestExplainFallbacks(t *testing.T) {
	assert.Empty(t, Explain(nil, "a:1", "x"))
	assert.Contains(t, Explain(context.DeadlineExceeded, "a:1", "identity file /x"), "no answer from Teleport at a:1 within dial_timeout")
	assert.Contains(t, Explain(trace.ConnectionProblem(errors.New("boom"), "boom"), "a:1", "x"), "lost the connection to Teleport at a:1")
	assert.Contains(t, Explain(errors.New("something odd"), "a:1", "x"), "Teleport at a:1: something odd")
	assert.Contains(t, Explain(errors.New("dial tcp: lookup nope: no such host"), "nope:1", "x"), "cannot resolve the host of addr nope:1")
}

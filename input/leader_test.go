package input

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLeaseName(t *testing.T) {
	require.Equal(t, "fluent-bit-teleport-teleport.example.com-teleport.0", LeaseName("teleport.example.com:443", "teleport.0"))
	require.Equal(t, "fluent-bit-teleport-auth.example.com-prod-audit", LeaseName("Auth.Example.com:3025", "Prod_Audit"))
	require.NotEqual(t, LeaseName("a.example.com:443", "x"), LeaseName("b.example.com:443", "x"), "two clusters, two Leases")
	require.Equal(t, "fluent-bit-teleport-h", LeaseName("h:1", "__"))
	long := LeaseName("h:1", strings.Repeat("a", 300))
	require.Len(t, long, 253)
}

func TestIdentityFromDownwardAPI(t *testing.T) {
	t.Setenv("POD_NAME", "fluent-bit-x7k2p")
	t.Setenv("NODE_NAME", "node-3")
	require.Equal(t, "fluent-bit-x7k2p@node-3", Identity())
}

package teleportsrc

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPermissionWarning(t *testing.T) {
	p := filepath.Join(t.TempDir(), "identity")
	require.NoError(t, os.WriteFile(p, []byte("x"), 0o600))
	assert.Empty(t, permissionWarning(p))
	require.NoError(t, os.Chmod(p, 0o440))
	assert.Empty(t, permissionWarning(p), "group access (Kubernetes fsGroup) is fine")
	require.NoError(t, os.Chmod(p, 0o644))
	assert.Contains(t, permissionWarning(p), "chmod 600 "+p)
	assert.Empty(t, permissionWarning(filepath.Join(t.TempDir(), "missing")))
}

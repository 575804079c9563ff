package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// Every example under conf/examples passes fluent-bit --dry-run with the
// plugin loaded.
func TestExampleConfigsDryRun(t *testing.T) {
	bin := fluentBit(t)
	so := testenv.PluginSO(t)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(root, "conf", "examples", "*"))
	require.NoError(t, err)
	dir := t.TempDir()
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		s := strings.ReplaceAll(string(raw), "/opt/fluent-bit/plugins/in_teleport.so", so)
		s = strings.ReplaceAll(s, "/var/lib/fluent-bit/storage", filepath.Join(dir, "storage"))
		write(t, filepath.Join(dir, filepath.Base(f)), s)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if name == "plugins.conf" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(bin, "--dry-run", "-c", filepath.Join(dir, name)).CombinedOutput()
			require.NoError(t, err, string(out))
			require.Contains(t, string(out), "configuration test is successful", string(out))
		})
	}
}

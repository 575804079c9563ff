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

// Every example directly under conf/examples, and the systemd unit's
// configuration, passes fluent-bit --dry-run with the plugin loaded (the
// destinations have their own test).
func TestExampleConfigsDryRun(t *testing.T) {
	bin := fluentBit(t)
	so := testenv.PluginSO(t)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	matches, err := filepath.Glob(filepath.Join(root, "conf", "examples", "*"))
	require.NoError(t, err)
	dir := t.TempDir()
	var files []string
	for _, f := range matches {
		if fi, err := os.Stat(f); err != nil || fi.IsDir() {
			continue
		}
		files = append(files, f)
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		s := strings.ReplaceAll(string(raw), "/opt/fluent-bit/plugins/in_teleport.so", so)
		s = strings.ReplaceAll(s, "/var/lib/fluent-bit/storage", filepath.Join(dir, "storage"))
		write(t, filepath.Join(dir, filepath.Base(f)), s)
	}
	// The systemd unit's pair, under another name beside the others.
	for _, name := range []string{"fluent-bit.conf", "plugins.conf"} {
		raw, err := os.ReadFile(filepath.Join(root, "conf", "systemd", name))
		require.NoError(t, err)
		s := strings.ReplaceAll(string(raw), "/opt/fluent-bit/plugins/in_teleport.so", so)
		s = strings.ReplaceAll(s, "/etc/fluent-bit-teleport/plugins.conf", filepath.Join(dir, "systemd-plugins.conf"))
		s = strings.ReplaceAll(s, "/var/lib/fluent-bit-teleport/buffer", filepath.Join(dir, "storage"))
		write(t, filepath.Join(dir, "systemd-"+name), s)
		if name == "fluent-bit.conf" {
			files = append(files, "systemd-"+name)
		}
	}
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasSuffix(name, "plugins.conf") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(bin, "--dry-run", "-c", filepath.Join(dir, name)).CombinedOutput()
			require.NoError(t, err, string(out))
			require.Contains(t, string(out), "configuration test is successful", string(out))
		})
	}
}

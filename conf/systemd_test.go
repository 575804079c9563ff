package conf

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unitValues returns the values of one key of a systemd unit, in order.
func unitValues(unit, key string) []string {
	var out []string
	for _, line := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && k == key {
			out = append(out, v)
		}
	}
	return out
}

// The unit and its configuration agree: Fluent Bit may write only to the
// unit's StateDirectory, so db and storage.path must be under it, and the
// unit must start Fluent Bit with that configuration.
func TestSystemdUnitMatchesItsConfig(t *testing.T) {
	unit, err := os.ReadFile("systemd/fluent-bit-teleport.service")
	require.NoError(t, err)
	cfg, err := os.ReadFile("systemd/fluent-bit.conf")
	require.NoError(t, err)

	state := unitValues(string(unit), "StateDirectory")
	require.Equal(t, []string{"fluent-bit-teleport"}, state)
	stateDir := "/var/lib/" + state[0] + "/"
	assert.Equal(t, []string{"0700"}, unitValues(string(unit), "StateDirectoryMode"))
	assert.Equal(t, []string{"strict"}, unitValues(string(unit), "ProtectSystem"))
	assert.Equal(t, []string{"SIGTERM"}, unitValues(string(unit), "KillSignal"), "SIGTERM lets the plugin commit its position")
	assert.Contains(t, unitValues(string(unit), "ExecStart")[0], " -c /etc/fluent-bit-teleport/fluent-bit.conf")

	settings := map[string]string{}
	for _, line := range strings.Split(string(cfg), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && !strings.HasPrefix(k, "#") {
			settings[strings.ToLower(k)] = strings.TrimSpace(v)
		}
	}
	assert.True(t, strings.HasPrefix(settings["db"], stateDir), "db %s outside %s", settings["db"], stateDir)
	assert.True(t, strings.HasPrefix(settings["storage.path"], stateDir), "storage.path %s outside %s", settings["storage.path"], stateDir)
	assert.Equal(t, "/etc/fluent-bit-teleport/plugins.conf", settings["plugins_file"])
	assert.Equal(t, "on", strings.ToLower(settings["hot_reload"]), "ExecReload sends SIGHUP")
}

// systemd itself accepts the unit (when systemd-analyze is installed).
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("SKIPPED: systemd-analyze is not installed, so the unit was not verified by systemd")
	}
	unit, err := os.ReadFile("systemd/fluent-bit-teleport.service")
	require.NoError(t, err)
	// systemd checks that ExecStart exists; stand in an executable for
	// the packaged fluent-bit.
	self, err := os.Executable()
	require.NoError(t, err)
	s := strings.ReplaceAll(string(unit), "/opt/fluent-bit/bin/fluent-bit", self)
	path := filepath.Join(t.TempDir(), "fluent-bit-teleport.service")
	require.NoError(t, os.WriteFile(path, []byte(s), 0o644))
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify complains")
}

// Package testenv gives the integration tests, the end-to-end tests and the
// benchmark what they share: the plugin's .so, a running Teleport test
// double, an identity file for it, and polling helpers.
package testenv

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apievents "github.com/gravitational/teleport/api/types/events"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
)

var (
	soOnce sync.Once
	soPath string
	soErr  error
)

// PluginSO returns the plugin built with -buildmode=c-shared: the file named
// by TELEPORT_PLUGIN_SO (make test sets it), or one built on first use into
// build/test/ at the repository root.
func PluginSO(t testing.TB) string {
	t.Helper()
	p, err := BuildPlugin()
	if err != nil {
		t.Fatalf("plugin .so: %v", err)
	}
	return p
}

// BuildPlugin is PluginSO without a testing.TB, for programs.
func BuildPlugin() (string, error) {
	soOnce.Do(func() {
		if p := os.Getenv("TELEPORT_PLUGIN_SO"); p != "" {
			soPath, soErr = p, nil
			if _, err := os.Stat(p); err != nil {
				soErr = fmt.Errorf("TELEPORT_PLUGIN_SO=%s: %w", p, err)
			}
			return
		}
		root, err := RepoRoot()
		if err != nil {
			soErr = err
			return
		}
		soPath = filepath.Join(root, "build", "test", "in_teleport.so")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", soPath, "./plugin")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			soErr = fmt.Errorf("go build ./plugin: %v\n%s", err, out)
		}
	})
	return soPath, soErr
}

// RepoRoot is the directory holding go.mod.
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the module")
	}
	return filepath.Dir(mod), nil
}

// Fake starts a Teleport test double, closed when the test ends.
func Fake(t testing.TB, cfg teleportfake.Config) *teleportfake.Server {
	t.Helper()
	s, err := teleportfake.Start(cfg)
	if err != nil {
		t.Fatalf("start fake Teleport: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Identity writes an identity file for s in a fresh directory.
func Identity(t testing.TB, s *teleportfake.Server, o teleportfake.IdentityOptions) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "identity")
	if err := s.WriteIdentityFile(p, o); err != nil {
		t.Fatalf("write identity: %v", err)
	}
	return p
}

// Seed appends n generated events spread from start by step and returns
// their ids.
func Seed(s *teleportfake.Server, seed int64, n int, start time.Time, step time.Duration) []string {
	return IDs(SeedEvents(s, seed, n, start, step))
}

// SeedEvents is Seed returning the events themselves.
func SeedEvents(s *teleportfake.Server, seed int64, n int, start time.Time, step time.Duration) []apievents.AuditEvent {
	evs := teleportfake.NewGenerator(seed).Events(n, start, step)
	s.Append(evs...)
	return evs
}

// IDs returns the ids of evs, in order; with types, only of the events of
// those types.
func IDs(evs []apievents.AuditEvent, types ...string) []string {
	ids := make([]string, 0, len(evs))
	for _, e := range evs {
		if len(types) == 0 || slices.Contains(types, e.GetType()) {
			ids = append(ids, e.GetID())
		}
	}
	return ids
}

// Eventually polls cond every 20 ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TeleportJSON is the event as Teleport's JSON has it, plus the base64 "data"
// Teleport adds to a print event's unstructured form: what the plugin's
// record, or its "message", must decode to.
func TeleportJSON(t testing.TB, ev apievents.AuditEvent) map[string]any {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if p, ok := ev.(*apievents.SessionPrint); ok {
		m["data"] = base64.StdEncoding.EncodeToString(p.Data)
	}
	return m
}

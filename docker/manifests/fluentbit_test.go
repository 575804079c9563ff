package manifests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFluentBit checks the configurations with a real Fluent Bit and the
// plugin library: `--dry-run` of the image's default YAML configuration,
// of the same with a `plugins:` list, and of the classic configuration the
// Helm values render; then it starts Fluent Bit with the default
// configuration and asks the HTTP endpoints the probes use.
func TestFluentBit(t *testing.T) {
	bin := os.Getenv("FLUENT_BIT")
	if bin == "" {
		t.Skip("SKIPPED: FLUENT_BIT is not set; set FLUENT_BIT=/path/to/fluent-bit (5.x) to check the configurations with a real Fluent Bit")
	}
	so := pluginSO(t)
	img := loadDockerfile(t)
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins.conf")
	conf := strings.ReplaceAll(string(readRepoFile(t, "docker/plugins.conf")), img.SOPath, so)
	if !strings.Contains(conf, so) {
		t.Fatalf("docker/plugins.conf does not name %s", img.SOPath)
	}
	writeFile(t, plugins, conf)

	defaultYAML := string(readRepoFile(t, "docker/fluent-bit.yaml"))
	if !strings.Contains(defaultYAML, img.PluginsFile) {
		t.Fatalf("docker/fluent-bit.yaml does not name %s", img.PluginsFile)
	}
	localYAML := strings.ReplaceAll(defaultYAML, img.PluginsFile, plugins)

	env := map[string]string{"TELEPORT_ADDR": "teleport.example.com:443"}

	t.Run("dry-run default yaml", func(t *testing.T) {
		dryRun(t, bin, writeFile(t, filepath.Join(dir, "fluent-bit.yaml"), localYAML), env, true)
	})
	t.Run("dry-run yaml plugins list", func(t *testing.T) {
		re := regexp.MustCompile(`(?m)^\s*plugins_file:.*\n`)
		if !re.MatchString(defaultYAML) {
			t.Fatal("docker/fluent-bit.yaml has no plugins_file line")
		}
		y := "plugins:\n  - " + so + "\n\n" + re.ReplaceAllString(defaultYAML, "")
		dryRun(t, bin, writeFile(t, filepath.Join(dir, "plugins-list.yaml"), y), env, true)
	})
	t.Run("dry-run helm classic config", func(t *testing.T) {
		c := renderHelmConfig(t, loadHelmValues(t, helmValues))
		if !strings.Contains(c, img.PluginsFile) {
			t.Fatalf("the Helm configuration does not name %s", img.PluginsFile)
		}
		c = strings.ReplaceAll(c, img.PluginsFile, plugins)
		dryRun(t, bin, writeFile(t, filepath.Join(dir, "helm", "fluent-bit.conf"), c), env, true)
	})
	t.Run("dry-run rejects a wrong input name", func(t *testing.T) {
		// Shows that the dry runs above really check the input name.
		bad := strings.Replace(localYAML, "name: teleport\n", "name: teleportx\n", 1)
		out := dryRun(t, bin, writeFile(t, filepath.Join(dir, "bad.yaml"), bad), env, false)
		if !strings.Contains(out, "'teleportx' tried to instance a plugin name that doesn't exist") {
			t.Errorf("the dry run failed for another reason than the input name:\n%s", out)
		}
	})
	t.Run("run default yaml", func(t *testing.T) {
		runDefault(t, bin, localYAML, dir)
	})
}

func writeFile(t *testing.T, p, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fbEnv is the environment for Fluent Bit: this process's, without the
// variables the configurations read, plus env.
func fbEnv(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TELEPORT_") || strings.HasPrefix(kv, "FLUENT_BIT_") || strings.HasPrefix(kv, "FLB_") {
			continue
		}
		out = append(out, kv)
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

func dryRun(t *testing.T, bin, config string, env map[string]string, wantOK bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--dry-run", "-c", config)
	cmd.Env = fbEnv(env)
	out, err := cmd.CombinedOutput()
	ok := err == nil && bytes.Contains(out, []byte("configuration test is successful"))
	switch {
	case wantOK && !ok:
		t.Errorf("fluent-bit --dry-run -c %s: %v\n%s", config, err, out)
	case !wantOK && ok:
		t.Errorf("fluent-bit --dry-run -c %s succeeded, want an error\n%s", config, out)
	}
	return string(out)
}

// runDefault starts Fluent Bit with the default configuration for a few
// seconds: the plugin must accept its settings (it rejects unknown ones at
// start) and the probe endpoints must answer 200. No Teleport is needed:
// without an identity file the plugin keeps retrying.
func runDefault(t *testing.T, bin, yaml, dir string) {
	config := writeFile(t, filepath.Join(dir, "run.yaml"), yaml)
	port := freePort(t)
	env := map[string]string{
		"TELEPORT_ADDR":           "127.0.0.1:1",
		"TELEPORT_IDENTITY_FILE":  filepath.Join(dir, "no-identity-yet"),
		"TELEPORT_DB":             filepath.Join(dir, "data", "teleport"),
		"FLUENT_BIT_STORAGE_PATH": filepath.Join(dir, "data", "storage"),
		"FLUENT_BIT_HTTP_PORT":    fmt.Sprint(port),
	}
	var logs lockedBuffer
	cmd := exec.Command(bin, "-c", config)
	cmd.Env = fbEnv(env)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		if t.Failed() {
			t.Logf("fluent-bit output:\n%s", logs.String())
		}
	}()

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("fluent-bit exited: %v", err)
		default:
		}
		if strings.Contains(logs.String(), "[input:teleport:teleport] settings:") && get200(base+"/") == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fluent-bit did not start the teleport input and its HTTP server within 20s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range []string{"/", "/api/v2/health", "/api/v1/health"} {
		if err := get200(base + p); err != nil {
			t.Errorf("GET %s: %v", p, err)
		}
	}
	if strings.Contains(logs.String(), "unknown setting") {
		t.Error("the plugin reported an unknown setting")
	}
	for _, d := range []string{env["TELEPORT_DB"], env["FLUENT_BIT_STORAGE_PATH"]} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was not created on start: %v", d, err)
		}
	}
}

func get200(url string) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

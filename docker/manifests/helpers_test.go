package manifests

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

const modulePath = "github.com/fluent-bit-teleport/fluent-bit-teleport"

// The user the image runs as (distroless "nonroot"); manifests and Helm
// values must run the pod as the same uid so that the image's data directory
// and the identity file are accessible.
const nonrootUID = 65532

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// repoRoot is the plugin module's directory (two levels up).
func repoRoot(t *testing.T) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			rootErr = err
			return
		}
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err != nil {
			rootErr = err
			return
		}
		if !bytes.Contains(b, []byte("module "+modulePath+"\n")) {
			rootErr = fmt.Errorf("%s/go.mod is not module %s", dir, modulePath)
			return
		}
		rootDir = dir
	})
	if rootErr != nil {
		t.Fatalf("finding the repository root: %v", rootErr)
	}
	return rootDir
}

// repoFile is a path below the repository root.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	return filepath.Join(repoRoot(t), filepath.FromSlash(rel))
}

func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoFile(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expandEnv does what Fluent Bit's flb_env_var_translate does to a value:
// ${NAME} becomes the variable's value (empty if unset), ${NAME:-word}
// becomes word when the variable is unset or empty.
func expandEnv(v string, env map[string]string) string {
	var out strings.Builder
	for {
		i := strings.Index(v, "${")
		if i < 0 {
			out.WriteString(v)
			return out.String()
		}
		j := strings.Index(v[i:], "}")
		if j < 0 {
			out.WriteString(v)
			return out.String()
		}
		out.WriteString(v[:i])
		expr := v[i+2 : i+j]
		name, def, hasDef := strings.Cut(expr, ":-")
		if val := env[name]; val != "" {
			out.WriteString(val)
		} else if hasDef {
			out.WriteString(def)
		}
		v = v[i+j+1:]
	}
}

// fbYAML is Fluent Bit's YAML configuration, as far as the tests read it.
type fbYAML struct {
	Env      map[string]any `json:"env"`
	Service  map[string]any `json:"service"`
	Plugins  []string       `json:"plugins"`
	Includes []string       `json:"includes"`
	Pipeline struct {
		Inputs  []map[string]any `json:"inputs"`
		Filters []map[string]any `json:"filters"`
		Outputs []map[string]any `json:"outputs"`
	} `json:"pipeline"`
}

func parseFBYAML(t *testing.T, b []byte) fbYAML {
	t.Helper()
	var c fbYAML
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		t.Fatalf("Fluent Bit YAML configuration: %v", err)
	}
	return c
}

// section is one [SECTION] of a classic-mode configuration, or one entry of
// a YAML pipeline list, with lower-cased keys and string values.
type section struct {
	Name  string
	Props []prop
}

type prop struct{ Key, Value string }

// Get returns the value of key (case-insensitive) and whether it is set.
func (s section) Get(key string) (string, bool) {
	for _, p := range s.Props {
		if strings.EqualFold(p.Key, key) {
			return p.Value, true
		}
	}
	return "", false
}

func (s section) Keys() []string {
	var keys []string
	for _, p := range s.Props {
		keys = append(keys, p.Key)
	}
	return keys
}

// yamlSection turns one YAML pipeline entry into a section. YAML 1.1 reads
// on/off as booleans; Fluent Bit reads the text, so turn them back.
func yamlSection(kind string, m map[string]any) section {
	s := section{Name: kind}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.Props = append(s.Props, prop{Key: strings.ToLower(k), Value: scalarString(m[k])})
	}
	return s
}

func scalarString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case bool:
		if v {
			return "on"
		}
		return "off"
	case float64:
		return fmt.Sprintf("%g", v)
	default:
		return fmt.Sprint(v)
	}
}

// parseClassic reads a classic-mode configuration (sections of "key value"
// lines).
func parseClassic(t *testing.T, text string) []section {
	t.Helper()
	var out []section
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			out = append(out, section{Name: strings.ToLower(strings.Trim(line, "[]"))})
		case strings.HasPrefix(line, "@"):
			t.Fatalf("classic configuration line %d: directive %q is not expected here", n, line)
		default:
			if len(out) == 0 {
				t.Fatalf("classic configuration line %d: %q is outside any section", n, line)
			}
			k, v, _ := strings.Cut(line, " ")
			out[len(out)-1].Props = append(out[len(out)-1].Props,
				prop{Key: strings.ToLower(k), Value: strings.TrimSpace(v)})
		}
	}
	return out
}

// isCoreInputKey reports whether the Fluent Bit core consumes key k of an
// [INPUT] section: such keys never reach the plugin, so they are not the
// plugin's to accept. The list is the one in
// conf/testdata/fluent-bit-core-input-keys.txt (a trailing * matches any rest).
func isCoreInputKey(t *testing.T, k string) bool {
	t.Helper()
	raw, err := os.ReadFile(repoFile(t, "conf/testdata/fluent-bit-core-input-keys.txt"))
	if err != nil {
		t.Fatal(err)
	}
	k = strings.ToLower(k)
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if prefix, ok := strings.CutSuffix(line, "*"); ok && strings.HasPrefix(k, prefix) || line == k {
			return true
		}
	}
	return false
}

var confKeyRE = regexp.MustCompile(`\bkey:\s*"([a-z0-9_.]+)"`)

// pluginKeys lists the settings the plugin accepts, read from the `key:`
// entries of conf/*.go.
func pluginKeys(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(repoFile(t, "conf/*.go"))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range confKeyRE.FindAllSubmatch(b, -1) {
			keys[string(m[1])] = true
		}
	}
	for _, must := range []string{"addr", "identity_file", "db"} {
		if !keys[must] {
			t.Fatalf("conf/*.go: found no `key: %q` entry; the settings table changed shape, update pluginKeys (found %v)", must, sortedKeys(keys))
		}
	}
	return keys
}

// checkInputKeys fails for settings of a teleport input that the plugin
// does not accept.
func checkInputKeys(t *testing.T, where string, in section) {
	t.Helper()
	known := pluginKeys(t)
	for _, k := range in.Keys() {
		if !isCoreInputKey(t, k) && !known[k] {
			t.Errorf("%s: the teleport input sets %q, which the plugin does not accept (conf/*.go accepts %s)",
				where, k, strings.Join(sortedKeys(known), ", "))
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// under reports whether p is dir or below it (slash paths).
func under(p, dir string) bool {
	p, dir = path.Clean(p), path.Clean(dir)
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

var (
	soOnce sync.Once
	soPath string
	soErr  error
	soTmp  string
)

// pluginSO returns a built in_teleport.so: $TELEPORT_PLUGIN_SO, or one built
// now from the repository (once per test run).
func pluginSO(t *testing.T) string {
	t.Helper()
	soOnce.Do(func() {
		if p := os.Getenv("TELEPORT_PLUGIN_SO"); p != "" {
			soPath, soErr = filepath.Abs(p)
			if soErr == nil {
				_, soErr = os.Stat(soPath)
			}
			return
		}
		soTmp, soErr = os.MkdirTemp("", "in_teleport-so-")
		if soErr != nil {
			return
		}
		out := filepath.Join(soTmp, "in_teleport.so")
		t.Logf("TELEPORT_PLUGIN_SO is not set: building %s (takes a while; `make test` passes the one it built)", out)
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags", "-s -w", "-o", out, "./plugin")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if b, err := cmd.CombinedOutput(); err != nil {
			soErr = fmt.Errorf("go build ./plugin: %v\n%s", err, b)
			return
		}
		soPath = out
	})
	if soErr != nil {
		t.Fatalf("plugin library: %v", soErr)
	}
	return soPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if soTmp != "" {
		os.RemoveAll(soTmp)
	}
	os.Exit(code)
}

func TestExpandEnvLikeFluentBit(t *testing.T) {
	env := map[string]string{"SET": "v", "EMPTY": ""}
	for in, want := range map[string]string{
		"${SET}":                "v",
		"${UNSET}":              "",
		"${UNSET:-d}":           "d",
		"${EMPTY:-d}":           "d",
		"${SET:-d}":             "v",
		"${UNSET:-}":            "",
		"a/${SET}/b":            "a/v/b",
		"${UNSET:-host:443}":    "host:443",
		"${SET}${UNSET:-x}/end": "vx/end",
		"plain":                 "plain",
	} {
		if got := expandEnv(in, env); got != want {
			t.Errorf("expandEnv(%q) = %q, want %q", in, got, want)
		}
	}
}

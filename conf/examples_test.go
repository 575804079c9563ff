package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// coreInputKeysFile is the one list of the keys Fluent Bit's core consumes
// (docker/manifests reads it too).
const coreInputKeysFile = "testdata/fluent-bit-core-input-keys.txt"

// isCoreInputKey reports whether Fluent Bit itself consumes key k, never the
// plugin.
func isCoreInputKey(t *testing.T, k string) bool {
	raw, err := os.ReadFile(coreInputKeysFile)
	require.NoError(t, err)
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

// exampleFiles lists the example configurations: examples/*, the
// destination pipelines in examples/destinations/*, and the systemd unit's.
func exampleFiles(t *testing.T) []string {
	var files []string
	for _, pattern := range []string{"examples/*", "examples/destinations/*", "systemd/*.conf"} {
		matches, err := filepath.Glob(pattern)
		require.NoError(t, err)
		for _, f := range matches {
			fi, err := os.Stat(f)
			require.NoError(t, err)
			if !fi.IsDir() {
				files = append(files, f)
			}
		}
	}
	return files
}

// teleportInputs returns the settings of every teleport input in the
// examples, classic and YAML.
func teleportInputs(t *testing.T) map[string][]map[string]string {
	out := map[string][]map[string]string{}
	for _, f := range exampleFiles(t) {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		switch filepath.Ext(f) {
		case ".yaml":
			var doc struct {
				Pipeline struct {
					Inputs []map[string]any `yaml:"inputs"`
				} `yaml:"pipeline"`
			}
			require.NoError(t, yaml.Unmarshal(raw, &doc), f)
			for _, in := range doc.Pipeline.Inputs {
				if in["name"] == "teleport" {
					m := map[string]string{}
					for k, v := range in {
						m[strings.ToLower(k)] = strings.TrimSpace(strings.Trim(strings.TrimSpace(yamlString(v)), `"`))
					}
					out[f] = append(out[f], m)
				}
			}
		case ".conf":
			var cur map[string]string
			for _, line := range strings.Split(string(raw), "\n") {
				line = strings.TrimSpace(line)
				switch {
				case line == "" || strings.HasPrefix(line, "#"):
				case strings.HasPrefix(line, "["):
					if cur != nil && strings.EqualFold(cur["name"], "teleport") {
						out[f] = append(out[f], cur)
					}
					cur = nil
					if line == "[INPUT]" {
						cur = map[string]string{}
					}
				case cur != nil:
					k, v, _ := strings.Cut(line, " ")
					cur[strings.ToLower(k)] = strings.TrimSpace(v)
				}
			}
			if cur != nil && strings.EqualFold(cur["name"], "teleport") {
				out[f] = append(out[f], cur)
			}
		}
	}
	return out
}

func yamlString(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}

func TestExamplesUseOnlyRealSettings(t *testing.T) {
	inputs := teleportInputs(t)
	require.NotEmpty(t, inputs)
	for _, dest := range []string{"elasticsearch", "elastic-integration", "splunk", "datadog", "http", "stdout"} {
		for _, ext := range []string{".conf", ".yaml"} {
			require.Len(t, inputs[filepath.Join("examples", "destinations", dest+ext)], 1, "the %s%s destination example has its teleport input checked", dest, ext)
		}
	}
	for f, list := range inputs {
		for _, in := range list {
			var own []string
			g := MapGetter{}
			for k, v := range in {
				if !isCoreInputKey(t, k) {
					own = append(own, k)
					g[k] = v
				}
			}
			assert.NoError(t, Unknown(own), f)
			_, err := Parse(g)
			assert.NoError(t, err, f)
		}
	}
}

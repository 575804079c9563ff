package manifests

import (
	"strings"
	"testing"
)

// defaultInput is the teleport input of docker/fluent-bit.yaml.
func defaultInput(t *testing.T) section {
	t.Helper()
	return teleportInput(t, "docker/fluent-bit.yaml", parseFBYAML(t, readRepoFile(t, "docker/fluent-bit.yaml")))
}

func teleportInput(t *testing.T, where string, c fbYAML) section {
	t.Helper()
	var found []section
	for _, m := range c.Pipeline.Inputs {
		if s := yamlSection("input", m); strings.EqualFold(get(s, "name"), "teleport") {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: want exactly one input with name: teleport, found %d", where, len(found))
	}
	return found[0]
}

func get(s section, key string) string {
	v, _ := s.Get(key)
	return v
}

func TestDefaultConfig(t *testing.T) {
	c := parseFBYAML(t, readRepoFile(t, "docker/fluent-bit.yaml"))
	in := defaultInput(t)
	checkInputKeys(t, "docker/fluent-bit.yaml", in)

	if len(c.Plugins) > 0 {
		t.Errorf("docker/fluent-bit.yaml lists plugins %v and also uses plugins_file: load the library one way only", c.Plugins)
	}
	env := map[string]string{}
	want := map[string]string{
		"addr":          "${TELEPORT_ADDR}", // required, no default
		"identity_file": "/var/run/teleport/identity",
		"db":            "/var/lib/fluent-bit/teleport",
		"storage.type":  "filesystem",
		"tag":           "teleport.audit",
	}
	for k, w := range want {
		v, ok := in.Get(k)
		if !ok {
			t.Errorf("docker/fluent-bit.yaml: the teleport input has no %s", k)
			continue
		}
		if k != "addr" {
			v = expandEnv(v, env)
		}
		if v != w {
			t.Errorf("docker/fluent-bit.yaml: %s = %q by default, want %q", k, v, w)
		}
	}
	for _, k := range []string{"http_server", "health_check"} {
		if v := scalarString(c.Service[k]); v != "on" {
			t.Errorf("docker/fluent-bit.yaml: service.%s = %q, want on (the probes use the HTTP server)", k, v)
		}
	}
	if v := expandEnv(scalarString(c.Service["http_port"]), env); v != "2020" {
		t.Errorf("docker/fluent-bit.yaml: service.http_port is %q by default, want 2020", v)
	}

	var sessionRule bool
	for _, m := range c.Pipeline.Filters {
		f := yamlSection("filter", m)
		if get(f, "name") == "rewrite_tag" && strings.HasPrefix(get(f, "rule"), "$teleport_stream ^session$ ") {
			sessionRule = true
			if !strings.HasPrefix(get(f, "match"), "teleport.") {
				t.Errorf("docker/fluent-bit.yaml: the session rewrite_tag filter matches %q", get(f, "match"))
			}
		}
	}
	if !sessionRule {
		t.Error("docker/fluent-bit.yaml: no rewrite_tag filter routes session recordings ($teleport_stream ^session$)")
	}
	if len(c.Pipeline.Outputs) != 1 {
		t.Fatalf("docker/fluent-bit.yaml: want one output, found %d", len(c.Pipeline.Outputs))
	}
	out := yamlSection("output", c.Pipeline.Outputs[0])
	if get(out, "name") != "stdout" || get(out, "format") != "json_lines" || get(out, "match") != "teleport.*" {
		t.Errorf("docker/fluent-bit.yaml: want the default output stdout, json_lines, match teleport.*; got %v", out.Props)
	}
}

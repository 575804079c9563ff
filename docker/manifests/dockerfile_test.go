package manifests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	Line int
	Cmd  string // upper case
	Args string
}

type stage struct {
	From  string // image reference
	Name  string // AS name
	Instr []instruction
}

func parseDockerfile(t *testing.T, b []byte) []stage {
	t.Helper()
	var instrs []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = n
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		instrs = append(instrs, instruction{Line: start, Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("Dockerfile ends inside a continued instruction (line %d)", start)
	}
	var stages []stage
	for _, in := range instrs {
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			var st stage
			for _, w := range f {
				if !strings.HasPrefix(w, "--") {
					st.From = w
					break
				}
			}
			for i := range f {
				if strings.EqualFold(f[i], "AS") && i+1 < len(f) {
					st.Name = f[i+1]
				}
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.Cmd != "ARG" {
				t.Fatalf("Dockerfile line %d: %s before the first FROM", in.Line, in.Cmd)
			}
			continue
		}
		stages[len(stages)-1].Instr = append(stages[len(stages)-1].Instr, in)
	}
	return stages
}

// copyInstr is a COPY with its flags, sources and destination.
type copyInstr struct {
	From, Chown string
	Srcs        []string
	Dest        string
}

func parseCopy(t *testing.T, in instruction) copyInstr {
	t.Helper()
	var c copyInstr
	var rest []string
	for _, w := range strings.Fields(in.Args) {
		switch {
		case strings.HasPrefix(w, "--from="):
			c.From = strings.TrimPrefix(w, "--from=")
		case strings.HasPrefix(w, "--chown="):
			c.Chown = strings.TrimPrefix(w, "--chown=")
		case strings.HasPrefix(w, "--"):
			t.Fatalf("Dockerfile line %d: COPY flag %s is not expected", in.Line, w)
		default:
			rest = append(rest, w)
		}
	}
	if len(rest) < 2 {
		t.Fatalf("Dockerfile line %d: COPY needs a source and a destination", in.Line)
	}
	c.Srcs, c.Dest = rest[:len(rest)-1], rest[len(rest)-1]
	return c
}

// dockerImage is what the tests learn from docker/Dockerfile.
type dockerImage struct {
	BuildFrom, FinalFrom string
	SOPath               string // the .so inside the image
	SOBuildPath          string // the .so in the build stage
	PluginsFile          string // where docker/plugins.conf goes
	ConfigFile           string // where docker/fluent-bit.yaml goes
	DataDir              string // the data volume
	DataChown            string
	User                 string
	Volumes              []string
	Cmd                  []string
	Entrypoint           []string
	FinalRuns            int
	ContextSrcs          []string // COPY sources from the build context
}

func loadDockerfile(t *testing.T) dockerImage {
	t.Helper()
	stages := parseDockerfile(t, readRepoFile(t, "docker/Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("docker/Dockerfile: want a build stage and a final stage, found %d stage(s)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	img := dockerImage{BuildFrom: build.From, FinalFrom: final.From}
	for _, st := range stages {
		for _, in := range st.Instr {
			if in.Cmd == "COPY" || in.Cmd == "ADD" {
				c := parseCopy(t, in)
				if c.From == "" {
					img.ContextSrcs = append(img.ContextSrcs, c.Srcs...)
				}
			}
		}
	}
	for _, in := range build.Instr {
		if in.Cmd == "RUN" && strings.Contains(in.Args, "-buildmode=c-shared") {
			if m := regexp.MustCompile(`-o\s+(\S+)\s+\./plugin\b`).FindStringSubmatch(in.Args); m != nil {
				img.SOBuildPath = m[1]
			}
		}
	}
	for _, in := range final.Instr {
		switch in.Cmd {
		case "RUN":
			img.FinalRuns++
		case "USER":
			img.User = in.Args
		case "VOLUME":
			img.Volumes = append(img.Volumes, jsonOrFields(t, in)...)
		case "CMD":
			img.Cmd = jsonOrFields(t, in)
		case "ENTRYPOINT":
			img.Entrypoint = jsonOrFields(t, in)
		case "COPY":
			c := parseCopy(t, in)
			if len(c.Srcs) != 1 {
				continue
			}
			switch src := c.Srcs[0]; {
			case c.From != "" && src == img.SOBuildPath:
				img.SOPath = c.Dest
			case c.From == "" && src == "docker/plugins.conf":
				img.PluginsFile = c.Dest
			case c.From == "" && src == "docker/fluent-bit.yaml":
				img.ConfigFile = c.Dest
			case c.From != "" && c.Chown != "":
				img.DataDir, img.DataChown = c.Dest, c.Chown
			}
		}
	}
	return img
}

func jsonOrFields(t *testing.T, in instruction) []string {
	t.Helper()
	if strings.HasPrefix(in.Args, "[") {
		var l []string
		if err := json.Unmarshal([]byte(in.Args), &l); err != nil {
			t.Fatalf("Dockerfile line %d: %s %s: %v", in.Line, in.Cmd, in.Args, err)
		}
		return l
	}
	return strings.Fields(in.Args)
}

var (
	fluentBitImageRE = regexp.MustCompile(`^fluent/fluent-bit:(\d+\.\d+\.\d+)(@sha256:[0-9a-f]{64})?$`)
	golangImageRE    = regexp.MustCompile(`^golang:(\d+\.\d+\.\d+)-(bookworm|trixie)(@sha256:[0-9a-f]{64})?$`)
	goDirectiveRE    = regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)\s*$`)
)

func TestDockerfile(t *testing.T) {
	img := loadDockerfile(t)

	if !fluentBitImageRE.MatchString(img.FinalFrom) {
		t.Errorf("final stage FROM %q: want the official image pinned to a release, fluent/fluent-bit:X.Y.Z", img.FinalFrom)
	}
	m := golangImageRE.FindStringSubmatch(img.BuildFrom)
	if m == nil {
		t.Errorf("build stage FROM %q: want a glibc Debian Go image pinned to a release, golang:X.Y.Z-bookworm", img.BuildFrom)
	} else {
		gm := goDirectiveRE.FindSubmatch(readRepoFile(t, "go.mod"))
		if gm == nil {
			t.Fatal("go.mod has no go directive")
		}
		if compareVersions(m[1], string(gm[1])) < 0 {
			t.Errorf("build stage uses Go %s, but go.mod needs go %s", m[1], gm[1])
		}
	}
	for _, l := range strings.Split(string(readRepoFile(t, "docker/Dockerfile")), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], "FROM") && strings.Contains(l, ":latest") {
			t.Errorf("Dockerfile: %q uses a latest tag", l)
		}
	}

	if img.FinalRuns > 0 {
		t.Errorf("final stage has %d RUN instruction(s): the Fluent Bit image is distroless (no shell); prepare files in the build stage", img.FinalRuns)
	}
	uid, gid, ok := strings.Cut(img.User, ":")
	if img.User == "" {
		t.Error("final stage has no USER: the official image runs as root")
	} else if n, err := strconv.Atoi(uid); err != nil || n != nonrootUID || !ok || gid != strconv.Itoa(nonrootUID) {
		t.Errorf("final stage USER %q: want %d:%d (distroless nonroot, numeric so Kubernetes can verify runAsNonRoot)", img.User, nonrootUID, nonrootUID)
	}

	if img.SOBuildPath == "" {
		t.Fatal("build stage: found no `go build -buildmode=c-shared ... -o <file> ./plugin`")
	}
	if img.SOPath == "" {
		t.Fatalf("final stage: found no COPY --from=<build> %s <dest>", img.SOBuildPath)
	}
	if base := path.Base(img.SOPath); strings.HasPrefix(base, "flb-") || !strings.HasSuffix(base, ".so") {
		t.Errorf("plugin library %s: must end in .so and must not start with flb- (Fluent Bit loads flb-*.so as C plugins)", img.SOPath)
	}
	paths := pluginsConfPaths(t)
	if len(paths) != 1 || paths[0] != img.SOPath {
		t.Errorf("docker/plugins.conf loads %v, the image has the plugin at %s", paths, img.SOPath)
	}
	if img.PluginsFile == "" || img.ConfigFile == "" {
		t.Fatalf("final stage must COPY docker/plugins.conf (got %q) and docker/fluent-bit.yaml (got %q)", img.PluginsFile, img.ConfigFile)
	}
	cfg := parseFBYAML(t, readRepoFile(t, "docker/fluent-bit.yaml"))
	if got := scalarString(cfg.Service["plugins_file"]); got != img.PluginsFile {
		t.Errorf("docker/fluent-bit.yaml service.plugins_file = %q, the image has the plugins file at %s", got, img.PluginsFile)
	}
	if want := []string{"-c", img.ConfigFile}; strings.Join(img.Cmd, " ") != strings.Join(want, " ") {
		t.Errorf("CMD %q: want %q", img.Cmd, want)
	}
	if strings.Join(img.Entrypoint, " ") != "/fluent-bit/bin/fluent-bit" {
		t.Errorf("ENTRYPOINT %q: want the official image's /fluent-bit/bin/fluent-bit", img.Entrypoint)
	}
	if img.DataDir == "" || img.DataChown != fmt.Sprintf("%d:%d", nonrootUID, nonrootUID) {
		t.Errorf("final stage: want the data directory copied with --chown=%d:%d, got %q with %q", nonrootUID, nonrootUID, img.DataDir, img.DataChown)
	}
	found := false
	for _, v := range img.Volumes {
		found = found || v == img.DataDir
	}
	if !found {
		t.Errorf("VOLUME %v does not include the data directory %s", img.Volumes, img.DataDir)
	}
	in := defaultInput(t)
	for _, key := range []string{"db"} {
		v, _ := in.Get(key)
		if p := expandEnv(v, nil); !under(p, img.DataDir) {
			t.Errorf("docker/fluent-bit.yaml: %s defaults to %s, outside the image's volume %s", key, p, img.DataDir)
		}
	}
	if p := expandEnv(scalarString(cfg.Service["storage.path"]), nil); !under(p, img.DataDir) {
		t.Errorf("docker/fluent-bit.yaml: storage.path defaults to %s, outside the image's volume %s", p, img.DataDir)
	}
}

// TestDockerIgnore checks that docker/Dockerfile.dockerignore keeps every
// file the build needs: the plugin's Go packages, go.mod, go.sum and the
// files COPY takes from the context.
func TestDockerIgnore(t *testing.T) {
	root := repoRoot(t)
	f, err := os.Open(filepath.Join(root, "docker", "Dockerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}

	needed := map[string]bool{"go.mod": true, "go.sum": true}
	for _, src := range loadDockerfile(t).ContextSrcs {
		if src != "." && src != "./" {
			needed[src] = true
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-json", "./plugin")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./plugin: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	var pkgs int
	for dec.More() {
		var p struct {
			ImportPath string
			Dir        string
			Module     *struct{ Path string }
			GoFiles    []string
			CgoFiles   []string
			CFiles     []string
			HFiles     []string
			EmbedFiles []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Path != modulePath {
			continue
		}
		pkgs++
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.CFiles, p.HFiles, p.EmbedFiles} {
			for _, name := range list {
				needed[filepath.ToSlash(filepath.Join(rel, name))] = true
			}
		}
	}
	if pkgs == 0 {
		t.Fatal("go list found no package of the module under ./plugin")
	}
	for _, file := range sortedKeys(needed) {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(file))); err != nil {
			t.Errorf("the build needs %s: %v", file, err)
			continue
		}
		if ex, err := pm.MatchesOrParentMatches(file); err != nil {
			t.Fatal(err)
		} else if ex {
			t.Errorf("docker/Dockerfile.dockerignore excludes %s, which the image build needs", file)
		}
	}
}

// pluginsConfPaths returns the Path entries of docker/plugins.conf.
func pluginsConfPaths(t *testing.T) []string {
	t.Helper()
	var paths []string
	for _, s := range parseClassic(t, string(readRepoFile(t, "docker/plugins.conf"))) {
		if s.Name != "plugins" {
			t.Errorf("docker/plugins.conf: unexpected section [%s]", s.Name)
			continue
		}
		for _, p := range s.Props {
			if p.Key == "path" {
				paths = append(paths, p.Value)
			}
		}
	}
	return paths
}

// compareVersions compares dotted version numbers (1.26.8 > 1.26).
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

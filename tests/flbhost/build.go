package flbhost

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// HostCFlags are the flags BuildHost compiles tests/host/host.c with.
var HostCFlags = []string{"-O2", "-g", "-Wall", "-Wextra", "-rdynamic"}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// BuildHost compiles tests/host/host.c once per test binary and returns the
// path of the executable. The binary is cached in the system temp directory
// under a name derived from the source, the flags and the compiler version,
// so several test binaries (and reruns) share one build. Set FLBHOST_BIN to
// use a prebuilt host instead, and CC to choose the compiler (default gcc).
func BuildHost(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("FLBHOST_BIN"); p != "" {
			buildPath = p
			return
		}
		buildPath, buildErr = CompileC(HostSource(), "host", append(append([]string{}, HostCFlags...), "-ldl", "-lpthread"))
	})
	if buildErr != nil {
		t.Fatalf("flbhost: building the host: %v", buildErr)
	}
	return buildPath
}

// HostSource returns the path of tests/host/host.c, found relative to this
// source file.
func HostSource() string {
	return filepath.Join(HostDir(), "host.c")
}

// HostDir returns the path of tests/host.
func HostDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("..", "host")
	}
	return filepath.Join(filepath.Dir(file), "..", "host")
}

func compiler() string {
	if cc := os.Getenv("CC"); cc != "" {
		return cc
	}
	return "gcc"
}

var ccVersion = sync.OnceValue(func() string {
	out, err := exec.Command(compiler(), "-dumpfullversion", "-dumpversion").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
})

// CompileC compiles one C file (plus the headers next to it, which are part
// of the cache key) with the given extra arguments, for example
// []string{"-shared", "-fPIC"} for a plugin, and returns the output path.
// Outputs are cached in the temp directory by content hash; a build is
// written to a temporary name and renamed, so concurrent test binaries never
// see a half-written file.
func CompileC(src, name string, args []string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%q\x00", compiler(), ccVersion(), args)
	code, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	h.Write(code)
	headers, _ := filepath.Glob(filepath.Join(filepath.Dir(src), "*.h"))
	for _, hdr := range headers {
		b, err := os.ReadFile(hdr)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "\x00%s\x00", filepath.Base(hdr))
		h.Write(b)
	}
	sum := hex.EncodeToString(h.Sum(nil))[:20]
	dir := filepath.Join(os.TempDir(), "flbhost-build")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, name+"-"+sum)
	if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		return out, nil
	}
	tmp, err := os.CreateTemp(dir, name+"-*.tmp")
	if err != nil {
		return "", err
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName)

	// libraries must come after the source file
	var flags, libs []string
	for _, a := range args {
		if strings.HasPrefix(a, "-l") {
			libs = append(libs, a)
		} else {
			flags = append(flags, a)
		}
	}
	cmdArgs := append(flags, "-o", tmpName, src)
	cmdArgs = append(cmdArgs, libs...)
	cmd := exec.Command(compiler(), cmdArgs...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s", compiler(), strings.Join(cmdArgs, " "), err, b)
	}
	if err := os.Chmod(tmpName, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmpName, out); err != nil {
		return "", err
	}
	return out, nil
}

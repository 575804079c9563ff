package manifests

import (
	"debug/elf"
	"strings"
	"testing"
)

// imageGlibc is the glibc of the final image. fluent/fluent-bit 5.x is built
// FROM gcr.io/distroless/cc-debian13 (dockerfiles/Dockerfile of Fluent Bit
// 5.1.1), and Debian 13 "trixie" ships glibc 2.41. The 3.x and 4.x images
// are on cc-debian12 (glibc 2.36); the image's build stage is bookworm
// (2.36) so its library loads in both.
const imageGlibc = "2.41"

// Libraries of the libc6 package, which every distroless cc image has. A Go
// c-shared library needs nothing else unless cgo code links more.
var libc6Libraries = map[string]bool{
	"libc.so.6": true, "libpthread.so.0": true, "libdl.so.2": true, "libm.so.6": true,
	"librt.so.1": true, "libresolv.so.2": true, "ld-linux-x86-64.so.2": true, "ld-linux-aarch64.so.1": true,
}

func TestPluginGlibc(t *testing.T) {
	so := pluginSO(t)
	f, err := elf.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Type != elf.ET_DYN {
		t.Fatalf("%s is not a shared library (ELF type %v)", so, f.Type)
	}

	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range libs {
		if !libc6Libraries[l] {
			t.Errorf("%s needs %s, which the distroless Fluent Bit image may not have", so, l)
		}
	}

	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	maxVer, maxSym := "", ""
	exported := map[string]bool{}
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF {
			exported[s.Name] = true
			continue
		}
		v, ok := strings.CutPrefix(s.Version, "GLIBC_")
		if !ok {
			continue
		}
		if maxVer == "" || compareVersions(v, maxVer) > 0 {
			maxVer, maxSym = v, s.Name
		}
	}
	// Version needs also hold versions no symbol names directly.
	needs, err := f.DynamicVersionNeeds()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range needs {
		for _, d := range n.Needs {
			if v, ok := strings.CutPrefix(d.Dep, "GLIBC_"); ok && compareVersions(v, maxVer) > 0 {
				maxVer, maxSym = v, "(version need of "+n.Name+")"
			}
		}
	}
	if maxVer == "" {
		t.Fatalf("%s requires no GLIBC symbol version: not a glibc build?", so)
	}
	t.Logf("%s needs glibc %s (%s); the image has %s", so, maxVer, maxSym, imageGlibc)
	if compareVersions(maxVer, imageGlibc) > 0 {
		t.Errorf("%s needs glibc %s (symbol %s), newer than the image's %s: build on an older distribution (the Dockerfile's bookworm stage)", so, maxVer, maxSym, imageGlibc)
	}
	for _, sym := range []string{"FLBPluginRegister", "FLBPluginInit"} {
		if !exported[sym] {
			t.Errorf("%s does not export %s", so, sym)
		}
	}
}

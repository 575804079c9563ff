package conf

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	readmeRowRE = regexp.MustCompile("^\\| (`[a-z0-9_.]+`(?:, `[a-z0-9_.]+`)*) \\|([^|]*)\\|")
	readmeKeyRE = regexp.MustCompile("`([a-z0-9_.]+)`")
)

// The README's settings tables list exactly the settings of the table in
// conf.go, each with its default: `value` for a default, (required), or
// (what unset means), or nothing.
func TestReadmeSettingsTablesMatchConf(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	readme := string(raw)
	start := strings.Index(readme, "\n## Settings\n")
	require.Positive(t, start, "README has a Settings section")
	section := readme[start+1:]
	section = section[:strings.Index(section, "\n## ")]

	byKey := map[string]setting{}
	for _, s := range settings {
		byKey[s.key] = s
	}
	var listed []string
	for _, line := range strings.Split(section, "\n") {
		m := readmeRowRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		cell := strings.TrimSpace(m[2])
		for _, km := range readmeKeyRE.FindAllStringSubmatch(m[1], -1) {
			key := km[1]
			listed = append(listed, key)
			s, ok := byKey[key]
			if !assert.True(t, ok, "README lists %q, which conf does not accept", key) {
				continue
			}
			want := ""
			switch {
			case s.def != "":
				want = "`" + s.def + "`"
			case s.required:
				want = "(required)"
			case s.unset != "":
				want = "(" + s.unset + ")"
			}
			assert.Equal(t, want, cell, "README's default of %q", key)
		}
	}
	sort.Strings(listed)
	assert.Equal(t, sorted(Keys()), listed, "README's settings tables list every setting once")
}

// Summary names every setting in effect, from the settings table: the
// defaults as written, and what unset means.
func TestSummaryComesFromTheTable(t *testing.T) {
	c, err := Parse(base())
	require.NoError(t, err)
	fields := strings.Fields(c.Summary())
	var want []string
	for _, s := range settings {
		v := base().Get(s.key)
		if v == "" {
			v = s.def
		}
		if v == "" {
			v = s.unset
		}
		if v != "" {
			want = append(want, s.key+"="+v)
		}
	}
	assert.Equal(t, want, fields)
}

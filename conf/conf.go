// Package conf turns the key/value settings of a Fluent Bit [INPUT] section
// into a typed, validated Config.
package conf

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Getter reads one setting; "" means unset. Fluent Bit looks keys up
// case-insensitively, so Getter implementations must too.
type Getter interface {
	Get(key string) string
}

// MapGetter is a Getter over a map, for tests and the example host.
type MapGetter map[string]string

// Get implements Getter with Fluent Bit's case-insensitive lookup.
func (m MapGetter) Get(key string) string {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// Limits of the Teleport API and sane bounds for the plugin.
const (
	MaxPageSize     = 10000 // the Auth Service rejects larger limits
	minBatchBytes   = 1000
	minPollInterval = 100 * time.Millisecond
)

// Config is one teleport input's settings.
type Config struct {
	Addr string

	IdentityFile string
	CertFile     string
	KeyFile      string
	CAFile       string

	DB string

	// StartTime is where the export begins when no cursor exists yet;
	// zero means "now" at the first start.
	StartTime time.Time
	// StartAfterUID starts the export right after this event (the last
	// one another exporter sent), found at or up to 48h after StartTime.
	StartAfterUID  string
	WindowSize     time.Duration
	PageSize       int
	PollInterval   time.Duration
	Types          []string
	SkipEventTypes []string

	BatchMaxRecords int
	BatchMaxBytes   int

	DialTimeout time.Duration

	ExportMode        string // auto, bulk or search
	ExportConcurrency int
	SearchConcurrency int // windows a search backfill reads at once
	SettlePeriod      time.Duration

	Sessions           bool
	SessionConcurrency int
	SkipSessionTypes   []string

	MetricsListen  string // host:port of the Prometheus endpoint, "" = off
	StatusInterval time.Duration

	Format string // FormatFields or FormatMessage

	Election Election

	// values are the settings in effect, as written or defaulted, for Summary.
	values map[string]string
}

// Record formats.
const (
	FormatFields  = "fields"  // the event's fields as the record's
	FormatMessage = "message" // the event's JSON text in the record's "message"
)

// Export modes.
const (
	ModeAuto   = "auto"
	ModeBulk   = "bulk"
	ModeSearch = "search"
)

// setting describes one key: its default (as the user would write it), or
// what leaving it unset means, what it accepts, and how to store it. This
// table is the one list of settings: Parse, Keys, Defaults, Summary and the
// README's check read it.
type setting struct {
	key      string
	def      string
	unset    string // without a default: what unset means (Summary, the README's "(…)")
	accepts  string
	required bool
	apply    func(c *Config, v string) error
}

var settings = []setting{
	{key: "addr", required: true, accepts: "host:port of the Teleport Proxy Service (e.g. teleport.example.com:443) or Auth Service (e.g. auth.example.com:3025)",
		apply: func(c *Config, v string) error { c.Addr = v; return checkAddr(v) }},
	{key: "identity_file", accepts: "path of an identity file from `tctl auth sign` or a tbot identity output",
		apply: func(c *Config, v string) error { c.IdentityFile = v; return nil }},
	{key: "cert_file", accepts: "path of a PEM client certificate (with key_file and ca_file)",
		apply: func(c *Config, v string) error { c.CertFile = v; return nil }},
	{key: "key_file", accepts: "path of the PEM private key of cert_file",
		apply: func(c *Config, v string) error { c.KeyFile = v; return nil }},
	{key: "ca_file", accepts: "path of the PEM certificate authority of the Teleport cluster",
		apply: func(c *Config, v string) error { c.CAFile = v; return nil }},
	{key: "db", required: true, accepts: "a directory for the plugin's db (its positions), e.g. /var/lib/fluent-bit/teleport",
		apply: func(c *Config, v string) error { c.DB = v; return nil }},
	{key: "start_time", def: "now", accepts: "an RFC 3339 time such as 2026-01-02T15:04:05Z, or `now`",
		apply: func(c *Config, v string) (err error) { c.StartTime, err = parseStartTime(v); return err }},
	{key: "start_after_uid", accepts: "the uid of an event at or up to 48h after start_time, such as the id the Event Handler saved (needs start_time)",
		apply: func(c *Config, v string) error { c.StartAfterUID = v; return nil }},
	{key: "window_size", def: "24h", accepts: "a duration from 1s to 30d, such as 1h or 24h",
		apply: func(c *Config, v string) (err error) {
			c.WindowSize, err = parseDurationIn(v, time.Second, 30*24*time.Hour)
			c.WindowSize = c.WindowSize.Truncate(time.Second)
			return err
		}},
	{key: "page_size", def: "10000", accepts: "a whole number from 1 to 10000",
		apply: func(c *Config, v string) (err error) { c.PageSize, err = parseIntIn(v, 1, MaxPageSize); return err }},
	{key: "search_concurrency", def: "2", accepts: "a whole number from 1 to 16",
		apply: func(c *Config, v string) (err error) { c.SearchConcurrency, err = parseIntIn(v, 1, 16); return err }},
	{key: "poll_interval", def: "1s", accepts: "a duration from 100ms to 1h, such as 1s or 30s",
		apply: func(c *Config, v string) (err error) {
			c.PollInterval, err = parseDurationIn(v, minPollInterval, time.Hour)
			return err
		}},
	{key: "types", unset: "all", accepts: "a comma-separated list of event types, such as user.login,session.start",
		apply: func(c *Config, v string) (err error) { c.Types, err = parseTypes(v); return err }},
	{key: "skip_event_types", unset: "none", accepts: "a comma-separated list of event types, such as cert.create,exec",
		apply: func(c *Config, v string) (err error) { c.SkipEventTypes, err = parseTypes(v); return err }},
	{key: "batch_max_records", def: "20000", accepts: "a whole number from 1 to 1000000",
		apply: func(c *Config, v string) (err error) { c.BatchMaxRecords, err = parseIntIn(v, 1, 1000000); return err }},
	{key: "batch_max_bytes", def: "16M", accepts: "a size from 1K to 1G, such as 2M or 16M",
		apply: func(c *Config, v string) (err error) {
			c.BatchMaxBytes, err = parseSizeIn(v, minBatchBytes, 1000*1000*1000)
			return err
		}},
	{key: "export_mode", def: ModeAuto, accepts: "auto (bulk export where the cluster supports it, else search), bulk or search",
		apply: func(c *Config, v string) error {
			c.ExportMode = strings.ToLower(v)
			switch c.ExportMode {
			case ModeAuto, ModeBulk, ModeSearch:
				return nil
			}
			return errors.New("not a mode")
		}},
	{key: "export_concurrency", def: "3", accepts: "a whole number from 1 to 32",
		apply: func(c *Config, v string) (err error) { c.ExportConcurrency, err = parseIntIn(v, 1, 32); return err }},
	{key: "settle_period", def: "1m", accepts: "a duration from 0 (off) to 24h, such as 30s or 5m",
		apply: func(c *Config, v string) (err error) {
			if v == "off" {
				v = "0"
			}
			c.SettlePeriod, err = parseDurationIn(v, 0, 24*time.Hour)
			return err
		}},
	{key: "sessions", def: "off", accepts: "on or off (also true/false, yes/no)",
		apply: func(c *Config, v string) (err error) { c.Sessions, err = parseBool(v); return err }},
	{key: "session_concurrency", def: "5", accepts: "a whole number from 1 to 64",
		apply: func(c *Config, v string) (err error) { c.SessionConcurrency, err = parseIntIn(v, 1, 64); return err }},
	{key: "skip_session_types", def: "print,desktop.recording", accepts: "a comma-separated list of session event types, such as print,desktop.recording, or none",
		apply: func(c *Config, v string) (err error) {
			if strings.EqualFold(v, "none") {
				c.SkipSessionTypes = nil
				return nil
			}
			c.SkipSessionTypes, err = parseTypes(v)
			return err
		}},
	{key: "metrics_listen", unset: "off", accepts: "host:port for a Prometheus endpoint at /metrics, such as 0.0.0.0:2021 or 127.0.0.1:2021, or off",
		apply: func(c *Config, v string) error {
			if strings.EqualFold(v, "off") {
				return nil
			}
			c.MetricsListen = v
			_, port, err := net.SplitHostPort(v)
			if err != nil {
				return errors.New("needs a host (may be empty) and a port")
			}
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("port %q is not a number from 1 to 65535", port)
			}
			return nil
		}},
	{key: "status_interval", def: "60s", accepts: "a duration from 0 (off) to 24h, such as 60s or 5m",
		apply: func(c *Config, v string) (err error) {
			if strings.EqualFold(v, "off") {
				v = "0"
			}
			c.StatusInterval, err = parseDurationIn(v, 0, 24*time.Hour)
			return err
		}},
	{key: "dial_timeout", def: "10s", accepts: "a duration from 1s to 5m",
		apply: func(c *Config, v string) (err error) {
			c.DialTimeout, err = parseDurationIn(v, time.Second, 5*time.Minute)
			return err
		}},
	{key: "format", def: FormatFields, accepts: "fields (the event's fields as the record's) or message (the event's JSON text in \"message\", for Elastic's teleport integration)",
		apply: func(c *Config, v string) error {
			c.Format = strings.ToLower(v)
			if c.Format != FormatFields && c.Format != FormatMessage {
				return errors.New("not a format")
			}
			return nil
		}},
}

func init() { settings = append(settings, electionSettings...) }

// Keys lists every setting the plugin accepts.
func Keys() []string {
	keys := make([]string, len(settings))
	for i, s := range settings {
		keys[i] = s.key
	}
	return keys
}

// Defaults returns the default value of every setting that has one, as a
// user would write it.
func Defaults() map[string]string {
	d := map[string]string{}
	for _, s := range settings {
		if s.def != "" {
			d[s.key] = s.def
		}
	}
	return d
}

// Parse reads every setting through g, applies defaults and validates the
// result. All problems are reported together, each naming the key, the value
// and what is accepted.
func Parse(g Getter) (Config, error) {
	c := Config{values: map[string]string{}}
	var errs []error
	for _, s := range settings {
		v := strings.TrimSpace(g.Get(s.key))
		if v == "" {
			if s.required {
				errs = append(errs, fmt.Errorf("setting %q is required: %s", s.key, s.accepts))
				continue
			}
			if s.def == "" {
				continue
			}
			v = s.def
		}
		c.values[s.key] = v
		if err := s.apply(&c, v); err != nil {
			errs = append(errs, fmt.Errorf("setting %q = %q: %v; accepted: %s", s.key, v, err, s.accepts))
		}
	}
	errs = append(errs, c.checkCredentials()...)
	errs = append(errs, c.checkElection()...)
	if c.StartAfterUID != "" && c.StartTime.IsZero() {
		errs = append(errs, fmt.Errorf("setting %q needs start_time: a time at or up to 48h before that event, such as the Event Handler's window_time", "start_after_uid"))
	}
	return c, errors.Join(errs...)
}

func (c *Config) checkCredentials() []error {
	pair := map[string]string{"cert_file": c.CertFile, "key_file": c.KeyFile, "ca_file": c.CAFile}
	var set, missing []string
	for _, k := range []string{"cert_file", "key_file", "ca_file"} {
		if pair[k] != "" {
			set = append(set, k)
		} else {
			missing = append(missing, k)
		}
	}
	switch {
	case c.IdentityFile != "" && len(set) > 0:
		return []error{fmt.Errorf("setting %q cannot be combined with %s: use either an identity file or a certificate, key and CA", "identity_file", strings.Join(set, ", "))}
	case c.IdentityFile == "" && len(set) == 0:
		return []error{fmt.Errorf("credentials are required: set %q to an identity file (from `tctl auth sign` or tbot), or set cert_file, key_file and ca_file", "identity_file")}
	case c.IdentityFile == "" && len(missing) > 0:
		return []error{fmt.Errorf("%s set but %s missing: cert_file, key_file and ca_file go together", strings.Join(set, ", "), strings.Join(missing, ", "))}
	}
	return nil
}

// Unknown returns an error naming every key in present that the plugin does
// not accept, with a suggestion where one is close.
func Unknown(present []string) error {
	known := map[string]bool{}
	for _, k := range Keys() {
		known[k] = true
	}
	var errs []error
	seen := map[string]bool{}
	for _, p := range present {
		k := strings.ToLower(strings.TrimSpace(p))
		if known[k] || seen[k] {
			continue
		}
		seen[k] = true
		msg := fmt.Sprintf("unknown setting %q", p)
		if s := closest(k, Keys()); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		errs = append(errs, errors.New(msg+"; accepted: "+strings.Join(sorted(Keys()), ", ")))
	}
	return errors.Join(errs...)
}

// CredentialFiles lists the files the credentials are read from.
func (c Config) CredentialFiles() []string {
	if c.IdentityFile != "" {
		return []string{c.IdentityFile}
	}
	return []string{c.CertFile, c.KeyFile, c.CAFile}
}

// Summary is the effective configuration for the start-up log line: every
// setting in effect, as written or defaulted, in the table's order. It holds
// paths only, never key material.
func (c Config) Summary() string {
	var b strings.Builder
	for _, s := range settings {
		v, ok := c.values[s.key]
		if !ok {
			if v = s.unset; v == "" {
				continue
			}
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.key + "=" + v)
	}
	return b.String()
}

func checkAddr(v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("needs a host and a port")
	}
	if host == "" {
		return errors.New("the host is empty")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}

func parseStartTime(v string) (time.Time, error) {
	if strings.EqualFold(v, "now") {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, errors.New("not an RFC 3339 time")
	}
	return t.UTC().Truncate(time.Second), nil
}

// parseDuration accepts Fluent Bit's forms (plain seconds, 10s, 5m, 1h, 2d)
// and Go's (1h30m, 500ms).
func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	lower := strings.ToLower(v)
	if days, ok := strings.CutSuffix(lower, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil {
			return 0, errors.New("not a duration")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(lower)
	if err != nil {
		return 0, errors.New("not a duration")
	}
	return d, nil
}

func parseDurationIn(v string, lo, hi time.Duration) (time.Duration, error) {
	d, err := parseDuration(v)
	if err != nil {
		return 0, err
	}
	if d < lo || d > hi {
		return 0, errors.New("out of range")
	}
	return d, nil
}

// parseBool accepts Fluent Bit's boolean words.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "true", "yes":
		return true, nil
	case "off", "false", "no":
		return false, nil
	}
	return false, errors.New("not on or off")
}

func parseIntIn(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errors.New("not a whole number")
	}
	if n < lo || n > hi {
		return 0, errors.New("out of range")
	}
	return n, nil
}

// parseSize follows Fluent Bit's size syntax: a number with an optional K, M
// or G suffix (optionally followed by B), in powers of 1000.
func parseSize(v string) (int64, error) {
	upper := strings.ToUpper(v)
	upper = strings.TrimSuffix(upper, "B")
	mult := int64(1)
	switch {
	case strings.HasSuffix(upper, "K"):
		mult = 1000
	case strings.HasSuffix(upper, "M"):
		mult = 1000 * 1000
	case strings.HasSuffix(upper, "G"):
		mult = 1000 * 1000 * 1000
	}
	if mult != 1 {
		upper = upper[:len(upper)-1]
	}
	f, err := strconv.ParseFloat(upper, 64)
	if err != nil || f < 0 {
		return 0, errors.New("not a size")
	}
	return int64(f * float64(mult)), nil
}

func parseSizeIn(v string, lo, hi int64) (int, error) {
	n, err := parseSize(v)
	if err != nil {
		return 0, err
	}
	if n < lo || n > hi {
		return 0, errors.New("out of range")
	}
	return int(n), nil
}

func parseTypes(v string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, t := range strings.Split(v, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		for _, r := range t {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				return nil, fmt.Errorf("%q is not an event type", t)
			}
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// closest returns the candidate within edit distance 3 of k, if any.
func closest(k string, candidates []string) string {
	best, bestDist := "", 4
	for _, c := range candidates {
		if d := editDistance(k, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

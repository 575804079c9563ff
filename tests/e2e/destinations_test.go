package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	apievents "github.com/gravitational/teleport/api/types/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// The destination examples (conf/examples/destinations) run in a real
// fluent-bit against the Teleport test double, each output pointed at a
// local HTTPS receiver (verified against a test CA, as the examples verify
// the real destination) that checks what the output sends: audit events on
// the audit side, the session recording on the session side.

const destinationsDir = "conf/examples/destinations"

// Secrets the tests put in the environment; the examples read them as ${VAR}.
const (
	testESAPIKey    = "ZXMtdGVzdC1pZDplcy10ZXN0LWtleQ=="
	testSplunkToken = "9f0e3c1a-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
	testDDAPIKey    = "0123456789abcdef0123456789abcdef"
	testHTTPToken   = "teleport-http-test-token"
)

// scenario is a Teleport test double holding a few hundred audit events and
// one recorded session.
type scenario struct {
	c       cluster
	start   time.Time
	sid     string
	audit   []apievents.AuditEvent // every audit event, session.upload included
	session []apievents.AuditEvent // the recording events the plugin exports (print is skipped)
	byID    map[string]apievents.AuditEvent
	want    map[string]map[string]any // uid -> the body the destination must get
}

func newScenario(t *testing.T, name string, seed int64, n int) *scenario {
	t.Helper()
	s := &scenario{c: newCluster(t, name), start: time.Now().Add(-time.Hour).Truncate(time.Second), byID: map[string]apievents.AuditEvent{}, want: map[string]map[string]any{}}
	gen := teleportfake.NewGenerator(seed)
	s.audit = gen.Events(n, s.start.Add(time.Second), time.Second+7*time.Millisecond)
	s.c.srv.Append(s.audit...)
	s.sid = gen.UUID()
	rec, upload := gen.Session(s.sid, s.start.Add(90*time.Second), 30)
	s.c.srv.AddSession(s.sid, rec)
	s.c.srv.Append(upload)
	s.audit = append(s.audit, upload)
	for _, ev := range rec {
		if ev.GetType() != teleportfake.TypeSessionPrint {
			s.session = append(s.session, ev)
		}
	}
	for _, ev := range s.audit {
		s.byID[ev.GetID()] = ev
		s.want[ev.GetID()] = testenv.TeleportJSON(t, ev)
	}
	for _, ev := range s.session {
		m := testenv.TeleportJSON(t, ev)
		m["teleport_stream"] = "session"
		m["sid"] = s.sid
		s.byID[ev.GetID()] = ev
		s.want[ev.GetID()] = m
	}
	require.Equal(t, len(s.audit)+len(s.session), len(s.want), "unique uids")
	require.NotEmpty(t, s.session)
	return s
}

func ids(evs []apievents.AuditEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.GetID()
	}
	return out
}

// event is the seeded event with this uid, or nil.
func (s *scenario) event(uid string) apievents.AuditEvent { return s.byID[uid] }

// checkBody checks that doc is the Teleport event it names by uid, exactly
// as Teleport's JSON has it (event, code, time, uid, cluster_name, user where
// Teleport has one: cert.create and session.upload have none, ...), plus the
// keys the output adds, which must be there.
func (s *scenario) checkBody(t *testing.T, where string, doc map[string]any, added ...string) {
	t.Helper()
	uid, _ := doc["uid"].(string)
	want, ok := s.want[uid]
	if !assert.True(t, ok, "%s: a document with an unknown uid %q: %v", where, uid, doc) {
		return
	}
	got := map[string]any{}
	for k, v := range doc {
		got[k] = v
	}
	for _, k := range added {
		if assert.Contains(t, got, k, "%s: %s added by the output", where, uid) {
			delete(got, k)
		}
	}
	for _, k := range []string{"event", "code", "time", "uid", "cluster_name"} {
		assert.Contains(t, got, k, "%s: %s", where, uid)
	}
	assert.Equal(t, want, got, "%s: %s (%v) is the Teleport event as Teleport's JSON has it", where, uid, want["event"])
}

// exampleEnv is what a test substitutes into an example: paths, the Teleport
// test double, the receiver and its CA.
type exampleEnv struct {
	so       string
	addr     string
	identity string
	db       string
	storage  string
	start    time.Time // set start_time (uncomment the example's # start_time)
	caFile   string    // add tls.ca_file next to every tls.verify on
	port     string    // every output's Port
}

var (
	reStartTime  = regexp.MustCompile(`(?m)#[ \t]*start_time([ \t]*:?[ \t]*)\S+`)
	reTLSVerify  = regexp.MustCompile(`(?mi)^([ \t]*)tls\.verify([ \t]*:[ \t]*|[ \t]+)on[ \t]*$`)
	rePort       = regexp.MustCompile(`(?mi)^([ \t]*)port([ \t]*:[ \t]*|[ \t]+)\d+[ \t]*$`)
	reFlush      = regexp.MustCompile(`(?mi)^([ \t]*)flush([ \t]*:[ \t]*|[ \t]+)1[ \t]*$`)
	reSessionsOn = regexp.MustCompile(`(?mi)^[ \t]*sessions([ \t]*:[ \t]*|[ \t]+)on[ \t]*$`)
)

// materialize writes the example src into dir with e substituted, and
// plugins.conf next to it, and returns its path. Every substitution must
// find its text, so the examples and this test cannot drift apart.
func materialize(t *testing.T, src, dir string, e exampleEnv) string {
	t.Helper()
	raw, err := os.ReadFile(src)
	require.NoError(t, err)
	s := string(raw)
	replace := func(old, new string) {
		require.Contains(t, s, old, "%s: expected %q to substitute", src, old)
		s = strings.ReplaceAll(s, old, new)
	}
	if strings.HasSuffix(src, ".yaml") {
		replace("/opt/fluent-bit/plugins/in_teleport.so", e.so)
	} else {
		require.Contains(t, s, "plugins.conf")
		write(t, filepath.Join(dir, "plugins.conf"), "[PLUGINS]\n    Path "+e.so+"\n")
	}
	replace("/var/lib/fluent-bit/storage", e.storage)
	if e.addr != "" {
		replace("teleport.example.com:443", e.addr)
		replace("/var/lib/teleport/fluent-bit/identity", e.identity)
		replace("/var/lib/fluent-bit/teleport", e.db)
	}
	rewrite := func(re *regexp.Regexp, repl string) {
		require.Regexp(t, re, s, "%s", src)
		s = re.ReplaceAllString(s, repl)
	}
	if !e.start.IsZero() {
		rewrite(reStartTime, "start_time${1}"+e.start.UTC().Format(time.RFC3339))
	}
	if e.caFile != "" {
		rewrite(reTLSVerify, "$0\n${1}tls.ca_file${2}"+e.caFile)
	}
	if e.port != "" {
		rewrite(rePort, "${1}port${2}"+e.port)
	}
	// Fast stops for the test: Grace 1 (the examples keep the default, 5).
	rewrite(reFlush, "$0\n${1}grace${2}1")
	return write(t, filepath.Join(dir, filepath.Base(src)), s)
}

// destinationExamples lists the example files (classic and YAML) of one
// destination, or of all when name is ""; the test skips, saying so, when
// there is no fluent-bit to run them.
func destinationExamples(t *testing.T, name string) []string {
	t.Helper()
	fluentBit(t)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	var out []string
	for _, ext := range []string{".conf", ".yaml"} {
		pattern := name + ext
		if name == "" {
			pattern = "*" + ext
		}
		files, err := filepath.Glob(filepath.Join(root, destinationsDir, pattern))
		require.NoError(t, err)
		for _, f := range files {
			if filepath.Base(f) != "plugins.conf" {
				out = append(out, f)
			}
		}
	}
	sort.Strings(out)
	return out
}

// setDestinationEnv sets the environment the examples read.
func setDestinationEnv(t *testing.T, host string) {
	t.Setenv("ES_HOST", host)
	t.Setenv("ES_API_KEY", testESAPIKey)
	t.Setenv("SPLUNK_HOST", host)
	t.Setenv("SPLUNK_HEC_TOKEN", testSplunkToken)
	t.Setenv("DD_HOST", host)
	t.Setenv("DD_API_KEY", testDDAPIKey)
	t.Setenv("HTTP_HOST", host)
	t.Setenv("HTTP_TOKEN", testHTTPToken)
}

// Every destination example, classic and YAML, passes fluent-bit --dry-run
// with the plugin loaded.
func TestDestinationExamplesDryRun(t *testing.T) {
	bin := fluentBit(t)
	so := testenv.PluginSO(t)
	files := destinationExamples(t, "")
	require.Len(t, files, 12, "six destinations, classic and YAML")
	setDestinationEnv(t, "destination.example.com")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			dir := t.TempDir()
			conf := materialize(t, f, dir, exampleEnv{so: so, storage: filepath.Join(dir, "storage")})
			out, err := exec.Command(bin, "--dry-run", "-c", conf).CombinedOutput()
			require.NoError(t, err, string(out))
			require.Contains(t, string(out), "configuration test is successful", string(out))
			require.NotContains(t, string(out), "is used but not set", "every ${VAR} of the example is documented and set")
		})
	}
}

// runEnv prepares one run of an example against s and rc.
func runEnv(t *testing.T, so string, s *scenario, dir string, ca *testCA, rc *receiver) exampleEnv {
	e := exampleEnv{
		so: so, addr: s.c.srv.Addr(), identity: s.c.identity,
		db: filepath.Join(dir, "db"), storage: filepath.Join(dir, "storage"),
		start: s.start,
	}
	if rc != nil {
		e.caFile, e.port = ca.File, rc.port()
	}
	return e
}

// delivery is one run of a destination example through the real
// fluent-bit to a local receiver.
type delivery struct {
	s    *scenario
	p    *proc
	rc   *receiver
	env  exampleEnv
	conf string
}

// deliver runs example f with a fresh scenario of n audit events and a
// recording until the receiver's fake holds all of them, then stops
// fluent-bit and the receiver (whose handlers it waits for, so the fake may
// be read unlocked after).
func deliver(t *testing.T, f, cluster string, seed int64, n int, respond func(received) (int, string), got func() sides) delivery {
	t.Helper()
	setDestinationEnv(t, "127.0.0.1")
	ca := newTestCA(t)
	d := delivery{rc: newReceiver(t, ca, respond), s: newScenario(t, cluster, seed, n)}
	raw, err := os.ReadFile(f)
	require.NoError(t, err)
	if !reSessionsOn.Match(raw) {
		d.s.session = nil // an audit-only example: no session side expected
	}
	dir := t.TempDir()
	d.env = runEnv(t, testenv.PluginSO(t), d.s, dir, ca, d.rc)
	d.conf = materialize(t, f, dir, d.env)
	d.p = startFluentBit(t, fluentBit(t), "-c", d.conf)
	waitUntil(t, d.p, time.Minute, func() string { return d.s.progress(got()) }, func() bool { return d.s.complete(got()) })
	d.p.stop(t, 15*time.Second)
	return d
}

// sides sorts delivered uids into the audit and the session side.
type sides struct {
	audit, session []string
}

// add puts uid on the side whose name the output's routing field holds.
func (g *sides) add(field any, audit, session, uid string) {
	switch field {
	case audit:
		g.audit = append(g.audit, uid)
	case session:
		g.session = append(g.session, uid)
	}
}

// check: every audit uid exactly once on the audit side and nothing else;
// the recording's events exactly once on the session side and nothing else.
func (s *scenario) check(t *testing.T, got sides) {
	t.Helper()
	requireExactlyOnce(t, ids(s.audit), got.audit)
	requireExactlyOnce(t, ids(s.session), got.session)
}

func (s *scenario) complete(got sides) bool {
	return len(countEach(got.audit)) >= len(s.audit) && len(countEach(got.session)) >= len(s.session)
}

func (s *scenario) progress(got sides) string {
	return fmt.Sprintf("audit side %d/%d uids, session side %d/%d uids",
		len(countEach(got.audit)), len(s.audit), len(countEach(got.session)), len(s.session))
}

// ---------------------------------------------------------------- Elasticsearch

// esFake answers the bulk API as Elasticsearch does: index stores a new
// document (201) or rewrites an existing _id (200); create stores a new one
// or refuses an existing _id (409, errors: true). An index named logs-*-* is
// a data stream (Elasticsearch's built-in logs template): it takes create
// only, needs @timestamp, and gives a document without _id one of its own.
type esFake struct {
	mu      sync.Mutex
	docs    map[string]map[string]map[string]any // index -> _id -> document
	actions []esAction                           // every action received, in order
	bad     []string                             // protocol problems
	largest int                                  // most actions in one request
}

type esAction struct {
	op, index, id string
	status        int
	stored        string // the _id it was stored under: id, or one Elasticsearch gave it
}

// esDataStream reports whether index is a data stream.
func esDataStream(index string) bool { return reDataStream.MatchString(index) }

var reDataStream = regexp.MustCompile(`^logs-[^-]+-[^-]+$`)

func newESFake() *esFake { return &esFake{docs: map[string]map[string]map[string]any{}} }

func (f *esFake) respond(r received) (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != "POST" || r.Path != "/_bulk" {
		f.bad = append(f.bad, r.Method+" "+r.Path)
		return 404, `{"error":"no handler"}`
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		f.bad = append(f.bad, "Content-Type "+ct)
	}
	if a := r.Header.Get("Authorization"); a != "ApiKey "+testESAPIKey {
		f.bad = append(f.bad, "Authorization "+a)
		return 401, `{"error":{"type":"security_exception"},"status":401}`
	}
	lines := strings.Split(strings.TrimSuffix(string(r.Body), "\n"), "\n")
	if len(lines)%2 != 0 {
		f.bad = append(f.bad, "odd number of bulk lines")
		return 400, `{"error":"bad bulk"}`
	}
	var items []string
	errors := false
	f.largest = max(f.largest, len(lines)/2)
	for i := 0; i < len(lines); i += 2 {
		var action map[string]map[string]any
		var doc map[string]any
		if json.Unmarshal([]byte(lines[i]), &action) != nil || json.Unmarshal([]byte(lines[i+1]), &doc) != nil || len(action) != 1 {
			f.bad = append(f.bad, "unparsable bulk pair: "+lines[i])
			return 400, `{"error":"bad bulk"}`
		}
		for op, meta := range action {
			index, _ := meta["_index"].(string)
			id, hasID := meta["_id"].(string)
			if _, ok := meta["_index"]; !ok || len(meta) > 2 || (len(meta) == 2 && !hasID) {
				f.bad = append(f.bad, "action line with other than _index and an optional _id: "+lines[i])
			}
			a := esAction{op: op, index: index, id: id, status: 201, stored: id}
			if f.docs[index] == nil {
				f.docs[index] = map[string]map[string]any{}
			}
			stream := esDataStream(index)
			reason := ""
			switch {
			case op != "create" && op != "index":
				reason = "unknown action " + op
			case stream && op != "create":
				reason = "only write ops with an op_type of create are allowed in data streams"
			case stream && doc["@timestamp"] == nil:
				reason = "data stream timestamp field [@timestamp] is missing"
			case id == "" && !stream:
				reason = "test: an index, not a data stream, is written with an _id"
			}
			if id == "" {
				a.stored = fmt.Sprintf("generated-%d", len(f.actions))
			}
			switch {
			case reason != "":
				a.status = 400
			case f.docs[index][a.stored] != nil && op == "create":
				a.status = 409
			case f.docs[index][a.stored] != nil:
				a.status = 200
				f.docs[index][a.stored] = doc
			default:
				f.docs[index][a.stored] = doc
			}
			f.actions = append(f.actions, a)
			switch a.status {
			case 201:
				items = append(items, fmt.Sprintf(`{"%s":{"_index":%q,"_id":%q,"_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":%d,"_primary_term":1,"status":201}}`, op, index, a.stored, len(f.actions)))
			case 200:
				items = append(items, fmt.Sprintf(`{"%s":{"_index":%q,"_id":%q,"_version":2,"result":"updated","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":%d,"_primary_term":1,"status":200}}`, op, index, id, len(f.actions)))
			case 409:
				errors = true
				items = append(items, fmt.Sprintf(`{"%s":{"_index":%q,"_id":%q,"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[%s]: version conflict, document already exists (current version [1])","index_uuid":"x6CZ1a3oT1Kj0N6s7w9v2Q","shard":"0","index":%q}}}`, op, index, id, id, index))
			default:
				errors = true
				items = append(items, fmt.Sprintf(`{"%s":{"_index":%q,"_id":%q,"status":400,"error":{"type":"illegal_argument_exception","reason":%q}}}`, op, index, id, reason))
			}
		}
	}
	return 200, fmt.Sprintf(`{"errors":%t,"took":3,"items":[%s]}`, errors, strings.Join(items, ","))
}

// stored sorts the stored documents' uids into sides by index prefix: the
// _id in the teleport-* indices, the uid in "message" in Elastic's teleport
// integration's data stream.
func (f *esFake) stored() sides {
	f.mu.Lock()
	defer f.mu.Unlock()
	var got sides
	for index, docs := range f.docs {
		for id, doc := range docs {
			switch {
			case strings.HasPrefix(index, "teleport-audit-"):
				got.audit = append(got.audit, id)
			case strings.HasPrefix(index, "teleport-session-"):
				got.session = append(got.session, id)
			case strings.HasPrefix(index, "logs-teleport.audit-"):
				got.audit = append(got.audit, fmt.Sprint(messageJSON(doc)["uid"]))
			}
		}
	}
	return got
}

// messageJSON is the event in a document's "message", or nil.
func messageJSON(doc map[string]any) map[string]any {
	msg, _ := doc["message"].(string)
	var m map[string]any
	if json.Unmarshal([]byte(msg), &m) != nil {
		return nil
	}
	return m
}

func (f *esFake) problems() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bad...)
}

func (f *esFake) doc(index, id string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.docs[index][id]
}

// largestBulk is the most actions one bulk request carried.
func (f *esFake) largestBulk() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.largest
}

func (f *esFake) sentActions() []esAction {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]esAction(nil), f.actions...)
}

// Elasticsearch: bulk index actions keyed on the event uid, in daily indices
// named by the event's date, audit and session apart; a second export of the
// same events (a fresh db) re-sends the same _index/_id pairs,
// Elasticsearch keeps one document each, and Fluent Bit takes the answers as
// success (with create, a request of duplicates only would be retried
// forever).
func TestDestinationElasticsearch(t *testing.T) {
	for _, f := range destinationExamples(t, "elasticsearch") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			es := newESFake()
			// 3000 events: a backfill's bulk request then holds thousands of
			// events, whose response outgrows out_es's default 512k response
			// buffer (the example sets Buffer_Size False).
			d := deliver(t, f, "es.example.com", 101, 3000, es.respond, es.stored)
			s, p := d.s, d.p
			assert.NotContains(t, p.output(), "cannot increase buffer", "bulk responses fit the response buffer")
			assert.NotContains(t, p.output(), "failed to flush chunk", "every bulk request succeeded the first time")
			t.Logf("largest bulk request: %d actions", es.largestBulk())

			require.Empty(t, es.problems(), "protocol problems")
			s.check(t, es.stored())
			first := es.sentActions()
			require.Equal(t, len(s.audit)+len(s.session), len(first), "no action sent twice in a fault-free run")
			for _, a := range first {
				ev := s.event(a.id)
				require.NotNil(t, ev, a.id)
				side := "teleport-audit-"
				if _, ok := s.want[a.id]["teleport_stream"]; ok {
					side = "teleport-session-"
				}
				assert.Equal(t, "index", a.op)
				assert.Equal(t, side+ev.GetTime().UTC().Format("2006.01.02"), a.index, "daily index named by the event's date")
				assert.Equal(t, 201, a.status)
				doc := es.doc(a.index, a.id)
				assert.Equal(t, ev.GetTime().UTC().Format("2006-01-02T15:04:05.000Z"), doc["@timestamp"], "@timestamp is the event time")
				s.checkBody(t, "es "+a.index, doc, "@timestamp")
			}

			// Export the same events again from a fresh db: the
			// same _index/_id pairs come again and rewrite the same documents.
			require.NoError(t, os.RemoveAll(d.env.db))
			p = startFluentBit(t, fluentBit(t), "-c", d.conf)
			resent := func() map[esAction]int {
				m := map[esAction]int{}
				for _, a := range es.sentActions()[len(first):] {
					m[esAction{op: a.op, index: a.index, id: a.id}]++
				}
				return m
			}
			waitUntil(t, p, time.Minute, func() string { return fmt.Sprintf("%d of %d re-sent", len(resent()), len(first)) },
				func() bool { return len(resent()) >= len(first) })
			p.stop(t, 15*time.Second)
			assert.NotContains(t, p.output(), "failed to flush chunk", "re-sent events are not retried")

			again := resent()
			for _, a := range first {
				assert.Positive(t, again[esAction{op: a.op, index: a.index, id: a.id}], "re-sent with the same _index and _id: %v", a)
			}
			assert.Equal(t, len(first), len(again), "nothing re-sent under another _index or _id")
			for _, a := range es.sentActions()[len(first):] {
				assert.Equal(t, 200, a.status, "the same document, rewritten")
			}
			s.check(t, es.stored())
		})
	}
}

// Elastic's teleport integration: bulk create actions into the data stream
// logs-teleport.audit-default without an _id, each document the event's JSON
// text in "message" (what the integration's ingest pipeline decodes) and
// @timestamp, nothing else; the text decodes to exactly the event. A second
// export of the same events (a fresh db) is accepted and indexed
// again: the data stream then holds each event.id twice, as the example says.
func TestDestinationElasticIntegration(t *testing.T) {
	for _, f := range destinationExamples(t, "elastic-integration") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			es := newESFake()
			d := deliver(t, f, "es.example.com", 111, 1500, es.respond, es.stored)
			s := d.s
			assert.NotContains(t, d.p.output(), "failed to flush chunk", "every bulk request succeeded the first time")
			require.Empty(t, es.problems(), "protocol problems")
			s.check(t, es.stored())
			first := es.sentActions()
			require.Len(t, first, len(s.audit), "no action sent twice in a fault-free run")
			for _, a := range first {
				assert.Equal(t, "create", a.op, "data streams take create only")
				assert.Equal(t, "logs-teleport.audit-default", a.index, "the integration's data stream")
				assert.Empty(t, a.id, "no _id: a repeat would be refused with 409 and retried forever")
				assert.Equal(t, 201, a.status)
				doc := es.doc(a.index, a.stored)
				keys := make([]string, 0, len(doc))
				for k := range doc {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				require.Equal(t, []string{"@timestamp", "message"}, keys, "what Elastic Agent's filestream sends, with the event time")
				ev := messageJSON(doc)
				require.NotNil(t, ev, "message holds JSON: %v", doc["message"])
				uid := fmt.Sprint(ev["uid"])
				if want, ok := s.want[uid]; assert.True(t, ok, "message of an unknown event: %v", doc["message"]) {
					assert.Equal(t, want, ev, "message decodes to exactly the event (%v)", want["event"])
					assert.Equal(t, s.event(uid).GetTime().UTC().Format("2006-01-02T15:04:05.000Z"), doc["@timestamp"], "@timestamp is the event time")
				}
			}

			// Export the same events again from a fresh db: each
			// is indexed a second time, under a new _id.
			require.NoError(t, os.RemoveAll(d.env.db))
			p := startFluentBit(t, fluentBit(t), "-c", d.conf)
			waitUntil(t, p, time.Minute, func() string { return fmt.Sprintf("%d of %d re-sent", len(es.sentActions())-len(first), len(first)) },
				func() bool { return len(es.sentActions()) >= 2*len(first) })
			p.stop(t, 15*time.Second)
			assert.NotContains(t, p.output(), "failed to flush chunk", "re-sent events are accepted, not retried")
			for _, a := range es.sentActions()[len(first):] {
				assert.Equal(t, 201, a.status, "a second document")
			}
			got := es.stored()
			assert.Len(t, got.audit, 2*len(s.audit), "every event.id twice")
			assert.Len(t, countEach(got.audit), len(s.audit))
		})
	}
}

// ---------------------------------------------------------------- Splunk HEC

// hecFake answers the HTTP Event Collector as Splunk does and keeps every
// event envelope it got, in order.
type hecFake struct {
	mu        sync.Mutex
	envelopes []map[string]any
	bad       []string
}

func (f *hecFake) respond(r received) (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != "POST" || r.Path != "/services/collector/event" {
		f.bad = append(f.bad, r.Method+" "+r.Path)
		return 404, `{"text":"The requested URL was not found on this server.","code":404}`
	}
	if a := r.Header.Get("Authorization"); a != "Splunk "+testSplunkToken {
		f.bad = append(f.bad, "Authorization "+a)
		return 403, `{"text":"Invalid token","code":4}`
	}
	// The body is the events' JSON objects one after the other.
	dec := json.NewDecoder(strings.NewReader(string(r.Body)))
	for dec.More() {
		var env map[string]any
		if err := dec.Decode(&env); err != nil {
			f.bad = append(f.bad, "unparsable body: "+err.Error())
			return 400, `{"text":"Invalid data format","code":6}`
		}
		f.envelopes = append(f.envelopes, env)
	}
	return 200, `{"text":"Success","code":0}`
}

func (f *hecFake) sides() sides {
	f.mu.Lock()
	defer f.mu.Unlock()
	var got sides
	for _, env := range f.envelopes {
		ev, _ := env["event"].(map[string]any)
		uid, _ := ev["uid"].(string)
		got.add(env["sourcetype"], "teleport:audit", "teleport:session", uid)
	}
	return got
}

// Splunk HEC: /services/collector/event with the token, one envelope per
// event: time, sourcetype (teleport:audit or teleport:session), index and
// the Teleport event under "event".
func TestDestinationSplunk(t *testing.T) {
	for _, f := range destinationExamples(t, "splunk") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			hec := &hecFake{}
			d := deliver(t, f, "splunk.example.com", 202, 300, hec.respond, hec.sides)
			d.rc.srv.Close()
			s := d.s

			require.Empty(t, hec.bad, "protocol problems")
			s.check(t, hec.sides())
			for _, env := range hec.envelopes {
				keys := make([]string, 0, len(env))
				for k := range env {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				assert.Equal(t, []string{"event", "index", "sourcetype", "time"}, keys, "the HEC envelope")
				assert.Equal(t, "teleport", env["index"])
				doc, _ := env["event"].(map[string]any)
				ev := s.event(fmt.Sprint(doc["uid"]))
				if assert.NotNil(t, ev, "event of %v", doc["uid"]) {
					sec, _ := env["time"].(float64)
					assert.InDelta(t, float64(ev.GetTime().UnixNano())/1e9, sec, 1e-3, "time is the event time in seconds")
				}
				s.checkBody(t, fmt.Sprint("splunk ", env["sourcetype"]), doc)
			}
		})
	}
}

// ---------------------------------------------------------------- Datadog

// ddFake answers the logs intake (/api/v2/logs) as Datadog does and keeps
// every log it got, in order.
type ddFake struct {
	mu       sync.Mutex
	logs     []map[string]any
	requests []received
	bad      []string
}

func (f *ddFake) respond(r received) (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r)
	if r.Method != "POST" || r.Path != "/api/v2/logs" {
		f.bad = append(f.bad, r.Method+" "+r.Path)
		return 404, `{"errors":["Not found"]}`
	}
	if k := r.Header.Get("DD-API-KEY"); k != testDDAPIKey {
		f.bad = append(f.bad, "DD-API-KEY "+k)
		return 403, `{"errors":[{"status":"403","title":"Forbidden","detail":"Forbidden"}]}`
	}
	var logs []map[string]any
	if err := json.Unmarshal(r.Body, &logs); err != nil {
		f.bad = append(f.bad, "body is not a JSON array of objects: "+err.Error())
		return 400, `{"errors":[{"status":"400","title":"Bad Request"}]}`
	}
	f.logs = append(f.logs, logs...)
	return 202, `{}`
}

func (f *ddFake) sides() sides {
	f.mu.Lock()
	defer f.mu.Unlock()
	var got sides
	for _, l := range f.logs {
		uid, _ := l["uid"].(string)
		got.add(l["service"], "teleport-audit", "teleport-session", uid)
	}
	return got
}

// Datadog: gzipped JSON arrays to /api/v2/logs with DD-API-KEY, each log the
// Teleport event plus timestamp (ms), ddsource, service and ddtags; every
// request within Datadog's limits (1000 logs, 5 MB before compression) even
// on a backfill of 1500 events, thanks to the example's batch limits.
func TestDestinationDatadog(t *testing.T) {
	for _, f := range destinationExamples(t, "datadog") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			dd := &ddFake{}
			d := deliver(t, f, "datadog.example.com", 303, 1500, dd.respond, dd.sides)
			d.rc.srv.Close()
			s := d.s

			require.Empty(t, dd.bad, "protocol problems")
			s.check(t, dd.sides())
			largest := 0
			for _, r := range dd.requests {
				assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
				assert.True(t, r.Gzipped, "compress gzip: Content-Encoding gzip")
				var logs []json.RawMessage
				require.NoError(t, json.Unmarshal(r.Body, &logs))
				assert.LessOrEqual(t, len(logs), 1000, "Datadog takes at most 1000 logs per request")
				assert.LessOrEqual(t, len(r.Body), 5_000_000, "Datadog takes at most 5 MB (uncompressed) per request")
				largest = max(largest, len(logs))
			}
			t.Logf("%d requests, at most %d logs in one", len(dd.requests), largest)
			for _, l := range dd.logs {
				stream := "audit"
				if l["service"] == "teleport-session" {
					stream = "session"
				}
				assert.Equal(t, "teleport", l["ddsource"])
				assert.Equal(t, "env:production,teleport_stream:"+stream, l["ddtags"])
				if ev := s.event(fmt.Sprint(l["uid"])); assert.NotNil(t, ev) {
					assert.Equal(t, float64(ev.GetTime().Add(500*time.Microsecond).UnixMilli()), l["timestamp"], "timestamp: the event time in ms")
				}
				s.checkBody(t, fmt.Sprint("datadog ", l["service"]), l, "timestamp", "ddsource", "service", "ddtags")
			}
		})
	}
}

// ---------------------------------------------------------------- HTTP

// httpFake is a generic JSON-lines endpoint with bearer-token auth.
type httpFake struct {
	mu    sync.Mutex
	lines map[string][]map[string]any // path -> lines
	bad   []string
}

func (f *httpFake) respond(r received) (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != "POST" || (r.Path != "/teleport/audit" && r.Path != "/teleport/session") {
		f.bad = append(f.bad, r.Method+" "+r.Path)
		return 404, `{"error":"not found"}`
	}
	if a := r.Header.Get("Authorization"); a != "Bearer "+testHTTPToken {
		f.bad = append(f.bad, "Authorization "+a)
		return 401, `{"error":"unauthorized"}`
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		f.bad = append(f.bad, "Content-Type "+ct)
	}
	if !strings.HasSuffix(string(r.Body), "\n") {
		f.bad = append(f.bad, "body does not end with a newline")
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(r.Body), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			f.bad = append(f.bad, "line is not one JSON object: "+err.Error())
			return 400, `{"error":"bad line"}`
		}
		if f.lines == nil {
			f.lines = map[string][]map[string]any{}
		}
		f.lines[r.Path] = append(f.lines[r.Path], m)
	}
	return 200, `{"ok":true}`
}

func (f *httpFake) sides() sides {
	f.mu.Lock()
	defer f.mu.Unlock()
	var got sides
	for _, m := range f.lines["/teleport/audit"] {
		got.audit = append(got.audit, fmt.Sprint(m["uid"]))
	}
	for _, m := range f.lines["/teleport/session"] {
		got.session = append(got.session, fmt.Sprint(m["uid"]))
	}
	return got
}

// HTTP: JSON lines POSTed with the bearer token, one event per line with
// its time under "timestamp" (ISO 8601), audit and session to their URIs.
func TestDestinationHTTP(t *testing.T) {
	for _, f := range destinationExamples(t, "http") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			hf := &httpFake{}
			d := deliver(t, f, "http.example.com", 404, 300, hf.respond, hf.sides)
			d.rc.srv.Close()
			s := d.s

			require.Empty(t, hf.bad, "protocol problems")
			s.check(t, hf.sides())
			for path, lines := range hf.lines {
				for _, m := range lines {
					if ev := s.event(fmt.Sprint(m["uid"])); assert.NotNil(t, ev) {
						assert.Equal(t, ev.GetTime().UTC().Format("2006-01-02T15:04:05.000000Z"), m["timestamp"], "json_date_key timestamp, iso8601")
					}
					s.checkBody(t, "http "+path, m, "timestamp")
				}
			}
		})
	}
}

// ---------------------------------------------------------------- stdout

// startFluentBitSplit is startFluentBit with the process's standard output
// kept apart from its log (standard error), so that log lines cannot land
// inside a record's line.
func startFluentBitSplit(t *testing.T, bin, stdoutFile string, args ...string) *proc {
	t.Helper()
	out, err := os.Create(stdoutFile)
	require.NoError(t, err)
	t.Cleanup(func() { _ = out.Close() })
	return launch(t, out, bin, args...)
}

// stdoutRecords reads audit records (JSON lines) and session chunks (JSON
// arrays) from the process's standard output.
func stdoutRecords(t *testing.T, file string) (audit []map[string]any, chunks [][]map[string]any) {
	t.Helper()
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	lines := strings.Split(string(raw), "\n")
	for _, line := range lines[:len(lines)-1] { // the last one is still being written
		switch {
		case strings.HasPrefix(line, "{"):
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &m), "line %q", line)
			audit = append(audit, m)
		case strings.HasPrefix(line, "["):
			var chunk []map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &chunk), "line %q", line)
			chunks = append(chunks, chunk)
		case strings.TrimSpace(line) != "":
			// The banner goes to standard output too.
		}
	}
	return audit, chunks
}

// stdout: audit events one JSON line each; the session recording's events in
// JSON arrays, each of one session.
func TestDestinationStdout(t *testing.T) {
	bin := fluentBit(t)
	so := testenv.PluginSO(t)
	for _, f := range destinationExamples(t, "stdout") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s := newScenario(t, "stdout.example.com", 505, 300)
			dir := t.TempDir()
			conf := materialize(t, f, dir, runEnv(t, so, s, dir, nil, nil))
			stdout := filepath.Join(dir, "stdout")
			current := func() sides {
				audit, chunks := stdoutRecords(t, stdout)
				var got sides
				for _, m := range audit {
					got.audit = append(got.audit, fmt.Sprint(m["uid"]))
				}
				for _, c := range chunks {
					for _, m := range c {
						got.session = append(got.session, fmt.Sprint(m["uid"]))
					}
				}
				return got
			}

			p := startFluentBitSplit(t, bin, stdout, "-c", conf)
			waitUntil(t, p, time.Minute, func() string { return s.progress(current()) }, func() bool { return s.complete(current()) })
			p.stop(t, 15*time.Second)

			s.check(t, current())
			audit, chunks := stdoutRecords(t, stdout)
			for _, m := range audit {
				s.checkBody(t, "stdout audit", m, "date")
			}
			for _, c := range chunks {
				for _, m := range c {
					assert.Equal(t, s.sid, m["sid"], "a chunk holds one session's events")
					s.checkBody(t, "stdout session", m, "date")
				}
			}
			for _, m := range append(audit, chunks[0]...) {
				if ev := s.event(fmt.Sprint(m["uid"])); assert.NotNil(t, ev) {
					assert.InDelta(t, float64(ev.GetTime().UnixNano())/1e9, m["date"], 1e-5, "date: the event time in seconds")
				}
			}
		})
	}
}

// Command realauthd runs a real Teleport 13.3.8 Auth Service in-process, for
// the plugin's integration tests: the lib/auth test server with the default
// file audit log (the one self-hosted clusters use), served over mutual TLS on
// 127.0.0.1.
//
// At start it seeds audit events spread over several UTC days (one file per
// day, as the file log writes them), records sessions through the real audit
// stream API (so the server writes session.upload), writes an identity file
// for a user holding a role that may list and read events and sessions, and
// prints one line:
//
//	ready addr=127.0.0.1:PORT identity=PATH cluster=NAME events=N sessions=ID,... first=RFC3339
//
// Then it reads commands on stdin, one per line:
//
//	emit N   emits N more audit events timed now; answers "ok emitted N last=UID"
//	quit     exits 0 (so do EOF, SIGTERM and SIGINT)
//
// A failing command answers "err <reason>". With -manifest, every event it
// emits (seeded or emitted later) is appended to that file as
// "uid<TAB>type<TAB>RFC3339Nano time<TAB>session id or nothing" before the
// ready line or the answer.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/gravitational/trace"
	"github.com/jonboulle/clockwork"
	"github.com/sirupsen/logrus"

	"github.com/gravitational/teleport/api/identityfile"
	"github.com/gravitational/teleport/api/types"
	apievents "github.com/gravitational/teleport/api/types/events"
	"github.com/gravitational/teleport/lib/auth"
	"github.com/gravitational/teleport/lib/auth/native"
	"github.com/gravitational/teleport/lib/events"
	"github.com/gravitational/teleport/lib/events/eventstest"
	"github.com/gravitational/teleport/lib/services"
	"github.com/gravitational/teleport/lib/session"
	"github.com/gravitational/teleport/lib/sshutils"
)

type options struct {
	identity string
	manifest string
	dataDir  string
	cluster  string
	user     string
	role     string
	events   int
	days     int
	sessions int
	seed     int64
	ttl      time.Duration
	verbose  bool
}

func main() {
	var o options
	flag.StringVar(&o.identity, "identity", "", "where to write the identity file of the exporter user (required)")
	flag.StringVar(&o.manifest, "manifest", "", "optional file receiving one line per event realauthd emits: uid, type, time")
	flag.StringVar(&o.dataDir, "data", "", "data directory (default: a temporary directory removed at exit)")
	flag.StringVar(&o.cluster, "cluster", "realauthd.test", "cluster name")
	flag.StringVar(&o.user, "user", "fluent-bit", "Teleport user of the identity file")
	flag.StringVar(&o.role, "role", "fluent-bit-exporter", "role of that user: list and read on event and session")
	flag.IntVar(&o.events, "events", 1000, "audit events to seed")
	flag.IntVar(&o.days, "days", 3, "seeded events are spread evenly over this many 24h days ending now")
	flag.IntVar(&o.sessions, "sessions", 1, "session recordings to create")
	flag.Int64Var(&o.seed, "seed", 1, "seed of the event generator")
	flag.DurationVar(&o.ttl, "ttl", 12*time.Hour, "validity of the identity file")
	flag.BoolVar(&o.verbose, "v", false, "Teleport's debug logs on stderr")
	flag.Parse()
	if err := run(o, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "realauthd: %v\n", trace.DebugReport(err))
		os.Exit(1)
	}
}

func run(o options, stdin io.Reader, stdout io.Writer) error {
	switch {
	case o.identity == "":
		return trace.BadParameter("-identity is required")
	case o.events < 0, o.sessions < 0:
		return trace.BadParameter("-events and -sessions must not be negative")
	case o.days < 1:
		return trace.BadParameter("-days must be at least 1")
	}
	// A signal during start-up is handled once the server is ready.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)

	logrus.SetOutput(os.Stderr)
	logrus.SetLevel(logrus.WarnLevel)
	if o.verbose {
		logrus.SetLevel(logrus.DebugLevel)
	}

	if o.dataDir == "" {
		dir, err := os.MkdirTemp("", "realauthd-")
		if err != nil {
			return trace.Wrap(err)
		}
		defer os.RemoveAll(dir)
		o.dataDir = dir
	}
	var manifest *os.File
	if o.manifest != "" {
		f, err := os.OpenFile(o.manifest, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return trace.Wrap(err)
		}
		defer f.Close()
		manifest = f
	}

	now := time.Now().UTC()
	span := time.Duration(o.days) * 24 * time.Hour
	seedFrom := now.Add(-span)
	// The Auth Service starts with its clock before the first seeded event, so
	// the seeding moves it forward only: the file log opens a new day file
	// when the clock enters a later UTC day, never an earlier one.
	c := &clock{FakeClock: clockwork.NewFakeClockAt(seedFrom.Add(-time.Minute))}

	s, err := newServer(o, c)
	if err != nil {
		return trace.Wrap(err)
	}
	defer s.close()

	gen := newGenerator(o.seed, o.cluster)
	ctx := context.Background()

	// Seed: event i at seedFrom + i*step (plus a random part of a step, so
	// times carry nanoseconds and stay strictly increasing).
	var first time.Time
	if o.events > 0 {
		step := (span - time.Second) / time.Duration(o.events)
		for i := 0; i < o.events; i++ {
			t := seedFrom.Add(time.Duration(i)*step + time.Duration(gen.rnd.Int63n(int64(step)/2+1)))
			if i == 0 {
				first = t
			}
			if err := s.emitAt(ctx, gen.next(t), manifest); err != nil {
				return trace.Wrap(err, "seeding event %d", i)
			}
		}
	}

	// Back to now, and from here on follow the wall clock.
	c.syncTo(time.Now())
	stopSync := c.follow(10 * time.Millisecond)
	defer stopSync()

	if err := s.serve(); err != nil {
		return trace.Wrap(err)
	}
	if err := s.writeIdentity(ctx, o); err != nil {
		return trace.Wrap(err)
	}
	sids := make([]string, 0, o.sessions)
	for i := 0; i < o.sessions; i++ {
		sid, err := s.recordSession(ctx, gen, manifest)
		if err != nil {
			return trace.Wrap(err, "recording session %d", i)
		}
		sids = append(sids, sid)
	}

	firstText := ""
	if !first.IsZero() {
		firstText = first.Format(time.RFC3339Nano)
	}
	if _, err := fmt.Fprintf(stdout, "ready addr=%s identity=%s cluster=%s events=%d sessions=%s first=%s\n",
		s.tls.Addr().String(), o.identity, o.cluster, o.events, strings.Join(sids, ","), firstText); err != nil {
		return trace.Wrap(err)
	}

	// Commands until quit, EOF or a signal.
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for {
		select {
		case <-sig:
			return nil
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			answer, quit := s.command(ctx, gen, manifest, line)
			if quit {
				return nil
			}
			if _, err := fmt.Fprintln(stdout, answer); err != nil {
				return trace.Wrap(err)
			}
		}
	}
}

// command runs one stdin command.
func (s *server) command(ctx context.Context, gen *generator, manifest *os.File, line string) (answer string, quit bool) {
	f := strings.Fields(line)
	switch {
	case len(f) == 0:
		return "err empty command", false
	case f[0] == "quit" && len(f) == 1:
		return "", true
	case f[0] == "emit" && len(f) == 2:
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 1 {
			return "err emit wants a positive count", false
		}
		last := ""
		prev := time.Time{}
		for i := 0; i < n; i++ {
			t := time.Now().UTC()
			if !t.After(prev) {
				t = prev.Add(time.Nanosecond)
			}
			prev = t
			s.clock.syncTo(t)
			ev := gen.next(t)
			if err := s.emitAt(ctx, ev, manifest); err != nil {
				return "err " + oneLine(err), false
			}
			last = ev.GetID()
		}
		return fmt.Sprintf("ok emitted %d last=%s", n, last), false
	}
	return fmt.Sprintf("err unknown command %q (want: emit N, quit)", line), false
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// server is the Auth Service with its audit log, upload storage and TLS
// endpoint.
type server struct {
	clock    *clock
	uploader *eventstest.MemoryUploader
	log      *events.AuditLog
	auth     *auth.TestAuthServer
	tls      *auth.TestTLSServer
	dir      string
}

func newServer(o options, c *clock) (*server, error) {
	// Recordings go through a ProtoStreamer into in-memory upload storage;
	// the audit log reads them back from the same storage, as Teleport does
	// with a real upload handler.
	uploader := eventstest.NewMemoryUploader()
	streamer, err := events.NewProtoStreamer(events.ProtoStreamerConfig{Uploader: uploader})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	logDir := filepath.Join(o.dataDir, "log")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return nil, trace.Wrap(err)
	}
	auditLog, err := events.NewAuditLog(events.AuditLogConfig{
		DataDir:       logDir,
		ServerID:      "auth-" + o.cluster,
		Clock:         c,
		UploadHandler: uploader,
	})
	if err != nil {
		return nil, trace.Wrap(err)
	}
	a, err := auth.NewTestAuthServer(auth.TestAuthServerConfig{
		ClusterName: o.cluster,
		Dir:         o.dataDir,
		Clock:       c,
		Streamer:    streamer,
		AuditLog:    auditLog,
	})
	if err != nil {
		auditLog.Close()
		return nil, trace.Wrap(err)
	}
	return &server{clock: c, uploader: uploader, log: auditLog, auth: a, dir: o.dataDir}, nil
}

// serve starts the TLS endpoint on 127.0.0.1. Its identity is issued at the
// current clock time, so the clock must be back at now.
func (s *server) serve() error {
	a := s.auth
	tlsSrv, err := auth.NewTestTLSServer(auth.TestTLSServerConfig{
		APIConfig: &auth.APIConfig{
			AuthServer: a.AuthServer,
			Authorizer: a.Authorizer,
			AuditLog:   a.AuditLog,
			Emitter:    a.AuthServer,
			// As in a real Auth Service: completing a recording stream
			// writes session.upload to the audit log.
			MetadataGetter: s.uploader,
		},
		AuthServer: a,
	})
	if err != nil {
		return trace.Wrap(err)
	}
	s.tls = tlsSrv
	return nil
}

func (s *server) close() {
	if s.tls != nil {
		s.tls.Close()
	}
	s.auth.Close()
}

// emitAt writes ev through the Auth Service's emitter (which checks it and
// hands it to the file log) with the clock at the event's time.
func (s *server) emitAt(ctx context.Context, ev apievents.AuditEvent, manifest *os.File) error {
	s.clock.syncTo(ev.GetTime())
	if err := s.auth.AuthServer.EmitAuditEvent(ctx, ev); err != nil {
		return trace.Wrap(err)
	}
	return writeManifest(manifest, ev)
}

func writeManifest(f *os.File, ev apievents.AuditEvent) error {
	if f == nil {
		return nil
	}
	sid := ""
	if s, ok := ev.(interface{ GetSessionID() string }); ok {
		sid = s.GetSessionID()
	}
	_, err := fmt.Fprintf(f, "%s\t%s\t%s\t%s\n", ev.GetID(), ev.GetType(), ev.GetTime().UTC().Format(time.RFC3339Nano), sid)
	return trace.Wrap(err)
}

// writeIdentity creates the exporter role and user and writes an identity
// file for the user, as `tctl auth sign --format=file` would.
func (s *server) writeIdentity(ctx context.Context, o options) error {
	a := s.auth.AuthServer
	role, err := types.NewRole(o.role, types.RoleSpecV6{
		Allow: types.RoleConditions{
			Rules: []types.Rule{
				types.NewRule(types.KindEvent, []string{types.VerbList, types.VerbRead}),
				types.NewRule(types.KindSession, []string{types.VerbList, types.VerbRead}),
			},
		},
	})
	if err != nil {
		return trace.Wrap(err)
	}
	if err := a.UpsertRole(ctx, role); err != nil {
		return trace.Wrap(err)
	}
	user, err := types.NewUser(o.user)
	if err != nil {
		return trace.Wrap(err)
	}
	user.AddRole(role.GetName())
	if err := a.CreateUser(ctx, user); err != nil {
		return trace.Wrap(err)
	}

	priv, pub, err := native.GenerateKeyPair()
	if err != nil {
		return trace.Wrap(err)
	}
	sshCert, tlsCert, err := a.GenerateUserTestCerts(auth.GenerateUserTestCertsRequest{
		Key:      pub,
		Username: o.user,
		TTL:      o.ttl,
	})
	if err != nil {
		return trace.Wrap(err)
	}
	hostCA, err := a.GetCertAuthority(ctx, types.CertAuthID{Type: types.HostCA, DomainName: o.cluster}, false)
	if err != nil {
		return trace.Wrap(err)
	}
	id := &identityfile.IdentityFile{
		PrivateKey: priv,
		Certs:      identityfile.Certs{SSH: sshCert, TLS: tlsCert},
	}
	for _, key := range services.GetSSHCheckingKeys(hostCA) {
		line, err := sshutils.MarshalKnownHost(sshutils.KnownHost{Hostname: o.cluster, AuthorizedKey: key})
		if err != nil {
			return trace.Wrap(err)
		}
		id.CACerts.SSH = append(id.CACerts.SSH, []byte(line))
	}
	id.CACerts.TLS = services.GetTLSCerts(hostCA)
	if err := os.MkdirAll(filepath.Dir(o.identity), 0o700); err != nil {
		return trace.Wrap(err)
	}
	os.Remove(o.identity) // identityfile.Write keeps the mode of an existing file
	return trace.Wrap(identityfile.Write(id, o.identity))
}

// recordSession plays an SSH node: it streams a recording (session.start,
// resize, prints, session.end) to the Auth Service over its own mutual TLS
// connection, sends the non-print events to the audit log too (as a node in
// the default async recording mode does), and completes the stream. The
// server then writes session.upload.
func (s *server) recordSession(ctx context.Context, gen *generator, manifest *os.File) (string, error) {
	node := gen.nodes[gen.rnd.Intn(len(gen.nodes))]
	clt, err := s.tls.NewClient(auth.TestServerID(types.RoleNode, node.id))
	if err != nil {
		return "", trace.Wrap(err)
	}
	defer clt.Close()

	sid := string(session.NewID())
	stream, err := clt.CreateAuditStream(ctx, session.ID(sid))
	if err != nil {
		return "", trace.Wrap(err)
	}
	// Timed a moment ago, so that no event is ahead of the wall clock.
	recording := gen.session(sid, node, time.Now().UTC().Add(-time.Second))
	for _, ev := range recording {
		if err := stream.EmitAuditEvent(ctx, ev); err != nil {
			return "", trace.Wrap(err)
		}
		if ev.GetType() == events.SessionPrintEvent {
			continue
		}
		s.clock.syncTo(ev.GetTime())
		if err := clt.EmitAuditEvent(ctx, ev); err != nil {
			return "", trace.Wrap(err)
		}
		if err := writeManifest(manifest, ev); err != nil {
			return "", trace.Wrap(err)
		}
	}
	if err := stream.Complete(ctx); err != nil {
		return "", trace.Wrap(err)
	}
	select {
	case <-stream.Done():
	case <-time.After(30 * time.Second):
		return "", trace.LimitExceeded("the audit stream of session %s did not finish within 30s", sid)
	}

	// session.upload is written before the server ends the stream; check.
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, _, err := s.log.SearchEvents(ctx, events.SearchEventsRequest{
			From:       recording[0].GetTime().Add(-time.Minute),
			To:         time.Now().Add(time.Minute),
			EventTypes: []string{events.SessionUploadEvent},
			Limit:      1000,
			Order:      types.EventOrderAscending,
		})
		if err != nil {
			return "", trace.Wrap(err)
		}
		for _, ev := range evs {
			if up, ok := ev.(*apievents.SessionUpload); ok && up.SessionID == sid {
				return sid, nil
			}
		}
		if time.Now().After(deadline) {
			return "", trace.LimitExceeded("no session.upload for session %s within 30s", sid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clock is the Auth Service's clock: a fake clock moved forward by hand while
// seeding, then kept at the wall clock by follow. It never moves back.
type clock struct {
	clockwork.FakeClock
	mu sync.Mutex
}

// syncTo advances the clock to t if t is later.
func (c *clock) syncTo(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := t.Sub(c.Now()); d > 0 {
		c.Advance(d)
	}
}

// follow keeps the clock at the wall clock until the returned func is
// called.
func (c *clock) follow(every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				c.syncTo(time.Now())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// generator makes realistic typed audit events, each with a unique uid.
type generator struct {
	rnd     *rand.Rand
	cluster string
	users   []string
	logins  []string
	nodes   []node
	ips     []string
}

type node struct{ id, host, addr string }

func newGenerator(seed int64, cluster string) *generator {
	g := &generator{
		rnd:     rand.New(rand.NewSource(seed)),
		cluster: cluster,
		users:   []string{"alice", "bob", "carol", "dave"},
		logins:  []string{"root", "ubuntu", "ec2-user"},
		ips:     []string{"203.0.113.10", "203.0.113.24", "198.51.100.7"},
	}
	for i := 1; i <= 3; i++ {
		g.nodes = append(g.nodes, node{id: g.uuid(), host: fmt.Sprintf("node-%d", i), addr: fmt.Sprintf("10.0.0.%d:3022", i)})
	}
	return g
}

// uuid is a random (version 4) UUID from the generator's source.
func (g *generator) uuid() string {
	var b [16]byte
	g.rnd.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return uuid.UUID(b).String()
}

func (g *generator) pick(l []string) string { return l[g.rnd.Intn(len(l))] }

func (g *generator) meta(typ, code string, t time.Time) apievents.Metadata {
	return apievents.Metadata{Type: typ, Code: code, ID: g.uuid(), Time: t.UTC(), ClusterName: g.cluster}
}

func (g *generator) user() apievents.UserMetadata {
	return apievents.UserMetadata{User: g.pick(g.users), Login: g.pick(g.logins)}
}

func (g *generator) conn(n node) apievents.ConnectionMetadata {
	return apievents.ConnectionMetadata{LocalAddr: n.addr, RemoteAddr: g.pick(g.ips) + ":" + strconv.Itoa(40000+g.rnd.Intn(20000)), Protocol: events.EventProtocolSSH}
}

func serverMeta(n node) apievents.ServerMetadata {
	return apievents.ServerMetadata{ServerNamespace: "default", ServerID: n.id, ServerHostname: n.host, ServerAddr: n.addr}
}

var commands = []string{"ls -la", "systemctl status nginx", "cat /etc/os-release", "df -h", "journalctl -u teleport --since today", "uptime"}

// next returns one event of a realistic mix, timed t.
func (g *generator) next(t time.Time) apievents.AuditEvent {
	n := g.nodes[g.rnd.Intn(len(g.nodes))]
	switch r := g.rnd.Intn(100); {
	case r < 20:
		ok := g.rnd.Intn(10) > 0
		code := events.UserLocalLoginCode
		st := apievents.Status{Success: true}
		if !ok {
			code = events.UserLocalLoginFailureCode
			st = apievents.Status{Success: false, Error: "invalid username, password or second factor", UserMessage: "invalid credentials"}
		}
		return &apievents.UserLogin{
			Metadata:           g.meta(events.UserLoginEvent, code, t),
			UserMetadata:       apievents.UserMetadata{User: g.pick(g.users)},
			Status:             st,
			Method:             events.LoginMethodLocal,
			ConnectionMetadata: apievents.ConnectionMetadata{RemoteAddr: g.pick(g.ips)},
		}
	case r < 35:
		return &apievents.SessionStart{
			Metadata:           g.meta(events.SessionStartEvent, events.SessionStartCode, t),
			UserMetadata:       g.user(),
			SessionMetadata:    apievents.SessionMetadata{SessionID: g.uuid()},
			ServerMetadata:     serverMeta(n),
			ConnectionMetadata: g.conn(n),
			TerminalSize:       "120:40",
			SessionRecording:   "node",
		}
	case r < 65:
		exit := "0"
		if g.rnd.Intn(8) == 0 {
			exit = "1"
		}
		code := events.ExecCode
		if exit != "0" {
			code = events.ExecFailureCode
		}
		return &apievents.Exec{
			Metadata:           g.meta(events.ExecEvent, code, t),
			UserMetadata:       g.user(),
			ConnectionMetadata: g.conn(n),
			SessionMetadata:    apievents.SessionMetadata{SessionID: g.uuid()},
			ServerMetadata:     serverMeta(n),
			CommandMetadata:    apievents.CommandMetadata{Command: g.pick(commands), ExitCode: exit},
		}
	case r < 75:
		start := t.Add(-time.Duration(1+g.rnd.Intn(600)) * time.Second)
		return &apievents.SessionEnd{
			Metadata:           g.meta(events.SessionEndEvent, events.SessionEndCode, t),
			UserMetadata:       g.user(),
			SessionMetadata:    apievents.SessionMetadata{SessionID: g.uuid()},
			ConnectionMetadata: g.conn(n),
			ServerMetadata:     serverMeta(n),
			Interactive:        true,
			Participants:       []string{g.pick(g.users)},
			StartTime:          start.UTC(),
			EndTime:            t.UTC(),
			SessionRecording:   "node",
		}
	case r < 85:
		return &apievents.PortForward{
			Metadata:           g.meta(events.PortForwardEvent, events.PortForwardCode, t),
			UserMetadata:       g.user(),
			ConnectionMetadata: g.conn(n),
			Status:             apievents.Status{Success: true},
			Addr:               "127.0.0.1:" + strconv.Itoa(5432+g.rnd.Intn(3)),
		}
	case r < 95:
		return &apievents.DatabaseSessionQuery{
			Metadata:        g.meta(events.DatabaseSessionQueryEvent, events.DatabaseSessionQueryCode, t),
			UserMetadata:    apievents.UserMetadata{User: g.pick(g.users)},
			SessionMetadata: apievents.SessionMetadata{SessionID: g.uuid()},
			DatabaseMetadata: apievents.DatabaseMetadata{
				DatabaseService: "postgres-prod", DatabaseProtocol: "postgres", DatabaseURI: "postgres.internal:5432",
				DatabaseName: "orders", DatabaseUser: "reporting",
			},
			DatabaseQuery:           "SELECT id, total FROM orders WHERE created_at > $1",
			DatabaseQueryParameters: []string{"2023-09-01"},
			Status:                  apievents.Status{Success: true},
		}
	default:
		return &apievents.AccessRequestCreate{
			Metadata:         g.meta(events.AccessRequestCreateEvent, events.AccessRequestCreateCode, t),
			UserMetadata:     apievents.UserMetadata{User: g.pick(g.users)},
			ResourceMetadata: apievents.ResourceMetadata{Name: g.uuid()},
			Roles:            []string{"db-admin"},
			RequestID:        g.uuid(),
			RequestState:     "PENDING",
			Reason:           "incident INC-" + strconv.Itoa(1000+g.rnd.Intn(9000)),
		}
	}
}

// session returns the events of one interactive SSH session recording,
// starting at t: session.start, resize, three prints, session.end.
func (g *generator) session(sid string, n node, t time.Time) []apievents.AuditEvent {
	user := apievents.UserMetadata{User: g.pick(g.users), Login: g.pick(g.logins)}
	conn := g.conn(n)
	srv := serverMeta(n)
	sess := apievents.SessionMetadata{SessionID: sid}
	at := func(ms int) time.Time { return t.Add(time.Duration(ms) * time.Millisecond) }
	meta := func(typ, code string, ms int, index int64) apievents.Metadata {
		m := g.meta(typ, code, at(ms))
		m.Index = index
		return m
	}
	out := []apievents.AuditEvent{
		&apievents.SessionStart{
			Metadata: meta(events.SessionStartEvent, events.SessionStartCode, 0, 0), UserMetadata: user,
			SessionMetadata: sess, ServerMetadata: srv, ConnectionMetadata: conn,
			TerminalSize: "120:40", SessionRecording: "node",
		},
		&apievents.Resize{
			Metadata: meta(events.ResizeEvent, events.TerminalResizeCode, 5, 1), UserMetadata: user,
			SessionMetadata: sess, ServerMetadata: srv, ConnectionMetadata: conn, TerminalSize: "160:48",
		},
	}
	offset := int64(0)
	for i, text := range []string{"$ uptime\r\n", " 10:00:00 up 42 days,  3 users,  load average: 0.08, 0.03, 0.01\r\n", "$ exit\r\n"} {
		ms := 10 + 10*i
		out = append(out, &apievents.SessionPrint{
			// Prints carry no uid, like the ones a node records.
			Metadata:          apievents.Metadata{Type: events.SessionPrintEvent, Time: at(ms).UTC(), Index: int64(2 + i)},
			ChunkIndex:        int64(i),
			Data:              []byte(text),
			Bytes:             int64(len(text)),
			DelayMilliseconds: int64(ms),
			Offset:            offset,
		})
		offset += int64(len(text))
	}
	out = append(out, &apievents.SessionEnd{
		Metadata: meta(events.SessionEndEvent, events.SessionEndCode, 50, 5), UserMetadata: user,
		SessionMetadata: sess, ConnectionMetadata: conn, ServerMetadata: srv,
		Interactive: true, Participants: []string{user.User}, StartTime: t.UTC(), EndTime: at(50).UTC(),
		SessionRecording: "node",
	})
	return out
}

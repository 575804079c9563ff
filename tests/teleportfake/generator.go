package teleportfake

import (
	"fmt"
	"math/rand"
	"strings"
	"time"

	apievents "github.com/gravitational/teleport/api/types/events"
	"github.com/gravitational/teleport/api/types/wrappers"
)

// Audit event types and codes the generator emits (Teleport's values).
const (
	TypeUserLogin           = "user.login"
	TypeUserCreate          = "user.create"
	TypeSessionStart        = "session.start"
	TypeSessionJoin         = "session.join"
	TypeSessionLeave        = "session.leave"
	TypeSessionEnd          = "session.end"
	TypeSessionUpload       = "session.upload"
	TypeSessionPrint        = "print"
	TypeResize              = "resize"
	TypeExec                = "exec"
	TypePortForward         = "port"
	TypeKubeRequest         = "kube.request"
	TypeCertCreate          = "cert.create"
	TypeRoleCreated         = "role.created"
	TypeDBSessionQuery      = "db.session.query"
	TypeAppSessionStart     = "app.session.start"
	TypeAccessRequestCreate = "access_request.create"

	CodeUserLogin           = "T1000I"
	CodeUserLoginFailure    = "T1000W"
	CodeUserCreate          = "T1002I"
	CodeSessionStart        = "T2000I"
	CodeSessionJoin         = "T2001I"
	CodeResize              = "T2002I"
	CodeSessionLeave        = "T2003I"
	CodeSessionEnd          = "T2004I"
	CodeSessionUpload       = "T2005I"
	CodeAppSessionStart     = "T2007I"
	CodeExec                = "T3002I"
	CodeExecFailure         = "T3002E"
	CodePortForward         = "T3003I"
	CodeKubeRequest         = "T3009I"
	CodeAccessRequestCreate = "T5000I"
	CodeRoleCreated         = "T9000I"
	CodeCertCreate          = "TC000I"
	CodeDBSessionQuery      = "TDB02I"
)

// Generator produces realistic Teleport audit events. It is deterministic
// for a given seed and sequence of calls. It is not safe for concurrent use.
type Generator struct {
	// ClusterName is put into every event's metadata; default "fake.teleport.test".
	ClusterName string

	rng     *rand.Rand
	users   []string
	nodes   []node
	dbs     []string
	apps    []string
	kubes   []string
	kinds   []kindWeight
	weights int
}

type node struct {
	id, hostname, addr string
	labels             map[string]string
}

type kindWeight struct {
	kind   string
	weight int
}

// NewGenerator returns a generator seeded with seed.
func NewGenerator(seed int64) *Generator {
	g := &Generator{
		ClusterName: DefaultClusterName,
		rng:         rand.New(rand.NewSource(seed)),
		users:       []string{"alice@example.com", "bob@example.com", "carol@example.com", "dave", "erin", "frank@example.com", "ci-bot", "grace@example.com"},
		dbs:         []string{"orders-postgres", "billing-mysql", "analytics-pg", "users-mongo"},
		apps:        []string{"grafana", "jenkins", "argocd", "kibana"},
		kubes:       []string{"prod-eu-1", "staging-us-2", "dev"},
	}
	envs := []string{"prod", "staging", "dev"}
	for i := range 12 {
		g.nodes = append(g.nodes, node{
			id:       g.uuid(),
			hostname: fmt.Sprintf("ip-10-%d-%d-%d.ec2.internal", 1+i%3, 10+i, 100+3*i),
			addr:     fmt.Sprintf("10.%d.%d.%d:3022", 1+i%3, 10+i, 100+3*i),
			labels: map[string]string{
				"env":                 envs[i%3],
				"team":                []string{"payments", "platform", "data"}[i%3],
				"teleport.dev/origin": "config",
			},
		})
	}
	g.kinds = []kindWeight{
		{"login", 10}, {"login.failed", 3}, {"session.start", 8}, {"session.end", 8},
		{"session.join", 2}, {"exec", 14}, {"cert.create", 10}, {"role.created", 1},
		{"user.create", 1}, {"db.query", 14}, {"app.start", 6}, {"access_request", 2},
		{"kube.request", 16}, {"port", 3},
	}
	for _, k := range g.kinds {
		g.weights += k.weight
	}
	return g
}

// UUID returns a random (version 4) UUID drawn from the generator's source.
func (g *Generator) UUID() string { return g.uuid() }

func (g *Generator) uuid() string {
	var b [16]byte
	g.rng.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func pick[T any](g *Generator, xs []T) T { return xs[g.rng.Intn(len(xs))] }

func (g *Generator) meta(typ, code string, t time.Time) apievents.Metadata {
	return apievents.Metadata{Type: typ, Code: code, ID: g.uuid(), Time: t.UTC(), ClusterName: g.ClusterName}
}

func (g *Generator) remoteAddr() string {
	return fmt.Sprintf("%d.%d.%d.%d:%d", 20+g.rng.Intn(180), g.rng.Intn(256), g.rng.Intn(256), 1+g.rng.Intn(254), 30000+g.rng.Intn(35000))
}

func (g *Generator) user() apievents.UserMetadata {
	u := pick(g, g.users)
	md := apievents.UserMetadata{
		User:      u,
		Login:     pick(g, []string{"root", "ubuntu", "ec2-user", "deploy"}),
		UserKind:  apievents.UserKind_USER_KIND_HUMAN,
		UserRoles: []string{"access", pick(g, []string{"editor", "auditor", "dev", "sre"})},
		UserTraits: wrappers.Traits{
			"logins": {"root", "ubuntu"},
		},
		UserClusterName: g.ClusterName,
	}
	if u == "ci-bot" {
		md.UserKind = apievents.UserKind_USER_KIND_BOT
		md.BotName = "ci"
		md.BotInstanceID = "5b0e3c1d-1f6a-4c3e-9a57-0c2b1d4e5f60"
	}
	return md
}

func (g *Generator) server(n node) apievents.ServerMetadata {
	return apievents.ServerMetadata{
		ServerNamespace: "default",
		ServerID:        n.id,
		ServerHostname:  n.hostname,
		ServerAddr:      n.addr,
		ServerLabels:    n.labels,
		ServerVersion:   ServerVersion,
	}
}

func (g *Generator) conn(n node, proto string) apievents.ConnectionMetadata {
	return apievents.ConnectionMetadata{LocalAddr: n.addr, RemoteAddr: g.remoteAddr(), Protocol: proto}
}

// Events returns n events of a realistic mix of types; event i has the time
// start+i*step and a unique uid. The mix has no session.upload events: those
// come from Session, together with the recording they announce.
func (g *Generator) Events(n int, start time.Time, step time.Duration) []apievents.AuditEvent {
	out := make([]apievents.AuditEvent, 0, n)
	for i := range n {
		out = append(out, g.event(start.Add(time.Duration(i)*step)))
	}
	return out
}

func (g *Generator) event(t time.Time) apievents.AuditEvent {
	r := g.rng.Intn(g.weights)
	kind := g.kinds[0].kind
	for _, k := range g.kinds {
		if r < k.weight {
			kind = k.kind
			break
		}
		r -= k.weight
	}
	n := pick(g, g.nodes)
	sid := g.uuid()
	switch kind {
	case "login", "login.failed":
		ev := &apievents.UserLogin{
			Metadata:       g.meta(TypeUserLogin, CodeUserLogin, t),
			UserMetadata:   apievents.UserMetadata{User: pick(g, g.users), UserKind: apievents.UserKind_USER_KIND_HUMAN},
			Status:         apievents.Status{Success: true},
			Method:         pick(g, []string{"local", "saml", "oidc", "github"}),
			ClientMetadata: apievents.ClientMetadata{UserAgent: pick(g, userAgents)},
			ConnectionMetadata: apievents.ConnectionMetadata{
				RemoteAddr: g.remoteAddr(),
			},
		}
		if ev.Method != "local" {
			ev.ConnectorID = ev.Method + "-corp"
			ev.IdentityAttributes = apievents.MustEncodeMap(map[string]any{
				"groups": []any{"engineering", "oncall"},
				"email":  ev.User,
			})
		}
		if kind == "login.failed" {
			ev.Code = CodeUserLoginFailure
			ev.Status = apievents.Status{Success: false, Error: "invalid username, password or second factor", UserMessage: "access denied"}
		}
		return ev
	case "session.start":
		return &apievents.SessionStart{
			Metadata:           g.meta(TypeSessionStart, CodeSessionStart, t),
			UserMetadata:       g.user(),
			SessionMetadata:    apievents.SessionMetadata{SessionID: sid},
			ServerMetadata:     g.server(n),
			ConnectionMetadata: g.conn(n, "ssh"),
			TerminalSize:       "120:40",
			SessionRecording:   "node",
		}
	case "session.end":
		u := g.user()
		return &apievents.SessionEnd{
			Metadata:           g.meta(TypeSessionEnd, CodeSessionEnd, t),
			UserMetadata:       u,
			SessionMetadata:    apievents.SessionMetadata{SessionID: sid},
			ConnectionMetadata: g.conn(n, "ssh"),
			ServerMetadata:     g.server(n),
			Interactive:        true,
			Participants:       []string{u.User},
			StartTime:          t.Add(-time.Duration(30+g.rng.Intn(3600)) * time.Second).UTC(),
			EndTime:            t.UTC(),
			SessionRecording:   "node",
		}
	case "session.join":
		return &apievents.SessionJoin{
			Metadata:           g.meta(TypeSessionJoin, CodeSessionJoin, t),
			UserMetadata:       g.user(),
			SessionMetadata:    apievents.SessionMetadata{SessionID: sid},
			ServerMetadata:     g.server(n),
			ConnectionMetadata: g.conn(n, "ssh"),
		}
	case "exec":
		ev := &apievents.Exec{
			Metadata:           g.meta(TypeExec, CodeExec, t),
			UserMetadata:       g.user(),
			ConnectionMetadata: g.conn(n, "ssh"),
			SessionMetadata:    apievents.SessionMetadata{SessionID: sid},
			ServerMetadata:     g.server(n),
			CommandMetadata:    apievents.CommandMetadata{Command: pick(g, commands), ExitCode: "0"},
		}
		if g.rng.Intn(8) == 0 {
			ev.Code = CodeExecFailure
			ev.CommandMetadata.ExitCode = "1"
			ev.CommandMetadata.Error = "exit status 1"
		}
		return ev
	case "cert.create":
		u := pick(g, g.users)
		return &apievents.CertificateCreate{
			Metadata:        g.meta(TypeCertCreate, CodeCertCreate, t),
			CertificateType: "user",
			Identity: &apievents.Identity{
				User:             u,
				Roles:            []string{"access", "editor"},
				Logins:           []string{"root", "ubuntu", "-teleport-internal-join"},
				KubernetesGroups: []string{"system:masters"},
				Expires:          t.Add(12 * time.Hour).UTC(),
				RouteToCluster:   g.ClusterName,
				TeleportCluster:  g.ClusterName,
				Traits:           wrappers.Traits{"logins": {"root", "ubuntu"}, "kubernetes_groups": {"system:masters"}},
				ClientIP:         strings.Split(g.remoteAddr(), ":")[0],
				PrivateKeyPolicy: "none",
			},
			ClientMetadata: apievents.ClientMetadata{UserAgent: pick(g, userAgents)},
		}
	case "role.created":
		return &apievents.RoleCreate{
			Metadata:           g.meta(TypeRoleCreated, CodeRoleCreated, t),
			ResourceMetadata:   apievents.ResourceMetadata{Name: fmt.Sprintf("team-%s-%d", pick(g, []string{"payments", "platform", "data"}), g.rng.Intn(100)), UpdatedBy: pick(g, g.users)},
			UserMetadata:       g.user(),
			ConnectionMetadata: apievents.ConnectionMetadata{RemoteAddr: g.remoteAddr()},
		}
	case "user.create":
		return &apievents.UserCreate{
			Metadata:           g.meta(TypeUserCreate, CodeUserCreate, t),
			UserMetadata:       g.user(),
			ResourceMetadata:   apievents.ResourceMetadata{Name: fmt.Sprintf("user%d@example.com", g.rng.Intn(10000)), UpdatedBy: pick(g, g.users)},
			Roles:              []string{"access", "auditor"},
			Connector:          pick(g, []string{"local", "okta", "github"}),
			ConnectionMetadata: apievents.ConnectionMetadata{RemoteAddr: g.remoteAddr()},
		}
	case "db.query":
		db := pick(g, g.dbs)
		return &apievents.DatabaseSessionQuery{
			Metadata:        g.meta(TypeDBSessionQuery, CodeDBSessionQuery, t),
			UserMetadata:    g.user(),
			SessionMetadata: apievents.SessionMetadata{SessionID: sid},
			DatabaseMetadata: apievents.DatabaseMetadata{
				DatabaseService:  db,
				DatabaseProtocol: "postgres",
				DatabaseURI:      db + ".cluster-abc123.eu-west-1.rds.amazonaws.com:5432",
				DatabaseName:     "app",
				DatabaseUser:     "readonly",
				DatabaseLabels:   map[string]string{"env": "prod", "teleport.dev/origin": "dynamic"},
				DatabaseType:     "rds",
				DatabaseOrigin:   "dynamic",
			},
			DatabaseQuery:           pick(g, queries),
			DatabaseQueryParameters: []string{fmt.Sprint(g.rng.Intn(100000))},
			Status:                  apievents.Status{Success: true},
		}
	case "app.start":
		app := pick(g, g.apps)
		return &apievents.AppSessionStart{
			Metadata:           g.meta(TypeAppSessionStart, CodeAppSessionStart, t),
			UserMetadata:       g.user(),
			SessionMetadata:    apievents.SessionMetadata{SessionID: sid},
			ServerMetadata:     g.server(n),
			ConnectionMetadata: apievents.ConnectionMetadata{RemoteAddr: g.remoteAddr()},
			PublicAddr:         app + "." + g.ClusterName,
			AppMetadata: apievents.AppMetadata{
				AppURI:        "http://" + app + ".internal:8080",
				AppPublicAddr: app + "." + g.ClusterName,
				AppName:       app,
				AppLabels:     map[string]string{"env": "prod"},
			},
		}
	case "access_request":
		return &apievents.AccessRequestCreate{
			Metadata:     g.meta(TypeAccessRequestCreate, CodeAccessRequestCreate, t),
			UserMetadata: g.user(),
			Roles:        []string{pick(g, []string{"db-admin", "prod-access", "kube-admin"})},
			RequestID:    g.uuid(),
			RequestState: "PENDING",
			Reason:       pick(g, []string{"incident INC-4711", "deploy hotfix", "investigate latency spike", "quarterly audit"}),
			MaxDuration:  t.Add(8 * time.Hour).UTC(),
		}
	case "kube.request":
		kube := pick(g, g.kubes)
		res := pick(g, []string{"pods", "deployments", "services", "configmaps", "secrets"})
		ns := pick(g, []string{"default", "payments", "kube-system", "monitoring"})
		name := fmt.Sprintf("%s-%x", strings.TrimSuffix(res, "s"), g.rng.Int63()&0xfffff)
		return &apievents.KubeRequest{
			Metadata:           g.meta(TypeKubeRequest, CodeKubeRequest, t),
			UserMetadata:       g.user(),
			ConnectionMetadata: apievents.ConnectionMetadata{LocalAddr: "10.0.0.5:3027", RemoteAddr: g.remoteAddr(), Protocol: "kube"},
			ServerMetadata:     apievents.ServerMetadata{ServerNamespace: "default", ServerID: n.id, ServerHostname: "kube-agent-0", ServerVersion: ServerVersion},
			RequestPath:        fmt.Sprintf("/api/v1/namespaces/%s/%s/%s", ns, res, name),
			Verb:               pick(g, []string{"GET", "GET", "GET", "POST", "DELETE", "PATCH"}),
			ResourceAPIGroup:   "core/v1",
			ResourceNamespace:  ns,
			ResourceKind:       res,
			ResourceName:       name,
			ResponseCode:       []int32{200, 200, 200, 201, 403, 404}[g.rng.Intn(6)],
			KubernetesClusterMetadata: apievents.KubernetesClusterMetadata{
				KubernetesCluster: kube,
				KubernetesGroups:  []string{"system:authenticated", "developers"},
				KubernetesUsers:   []string{"teleport"},
				KubernetesLabels:  map[string]string{"env": "prod", "region": "eu-west-1"},
			},
		}
	default: // port
		return &apievents.PortForward{
			Metadata:           g.meta(TypePortForward, CodePortForward, t),
			UserMetadata:       g.user(),
			ConnectionMetadata: g.conn(n, "ssh"),
			Status:             apievents.Status{Success: true},
			Addr:               fmt.Sprintf("localhost:%d", pick(g, []int{5432, 8080, 6379, 9090})),
		}
	}
}

// Session returns a recording of n events (at least 3): session.start
// (index 0), print events with some resize/join/leave events in between and
// session.end, with increasing EventIndex and times from start; plus the
// session.upload audit event that announces the recording (it carries the
// session id and is dated one second after session.end). Print events carry
// no uid, like in Teleport's recordings.
func (g *Generator) Session(sessionID string, start time.Time, n int) (recording []apievents.AuditEvent, upload apievents.AuditEvent) {
	n = max(n, 3)
	nd := pick(g, g.nodes)
	u := g.user()
	joiner := g.user()
	conn := g.conn(nd, "ssh")
	sm := apievents.SessionMetadata{SessionID: sessionID}
	t := start.UTC()
	var offset, chunk int64
	recording = make([]apievents.AuditEvent, 0, n)
	add := func(ev apievents.AuditEvent) {
		ev.SetIndex(int64(len(recording)))
		recording = append(recording, ev)
	}
	add(&apievents.SessionStart{
		Metadata:           g.meta(TypeSessionStart, CodeSessionStart, t),
		UserMetadata:       u,
		SessionMetadata:    sm,
		ServerMetadata:     g.server(nd),
		ConnectionMetadata: conn,
		TerminalSize:       "120:40",
		SessionRecording:   "node",
	})
	joined := false
	for i := 1; i < n-1; i++ {
		t = t.Add(time.Duration(20+g.rng.Intn(400)) * time.Millisecond)
		switch {
		case i%11 == 5:
			add(&apievents.Resize{
				Metadata:           g.meta(TypeResize, CodeResize, t),
				UserMetadata:       u,
				SessionMetadata:    sm,
				ConnectionMetadata: conn,
				ServerMetadata:     g.server(nd),
				TerminalSize:       pick(g, []string{"80:25", "120:40", "200:60"}),
			})
		case i == n/3 && !joined && n >= 8:
			joined = true
			add(&apievents.SessionJoin{
				Metadata:           g.meta(TypeSessionJoin, CodeSessionJoin, t),
				UserMetadata:       joiner,
				SessionMetadata:    sm,
				ServerMetadata:     g.server(nd),
				ConnectionMetadata: g.conn(nd, "ssh"),
			})
		case i == 2*n/3 && joined:
			joined = false
			add(&apievents.SessionLeave{
				Metadata:           g.meta(TypeSessionLeave, CodeSessionLeave, t),
				UserMetadata:       joiner,
				SessionMetadata:    sm,
				ServerMetadata:     g.server(nd),
				ConnectionMetadata: conn,
			})
		default:
			data := []byte(pick(g, terminalOutput))
			add(&apievents.SessionPrint{
				Metadata:          apievents.Metadata{Type: TypeSessionPrint, Time: t, ClusterName: g.ClusterName},
				ChunkIndex:        chunk,
				Data:              data,
				Bytes:             int64(len(data)),
				DelayMilliseconds: t.Sub(start).Milliseconds(),
				Offset:            offset,
			})
			chunk++
			offset += int64(len(data))
		}
	}
	t = t.Add(time.Duration(20+g.rng.Intn(400)) * time.Millisecond)
	participants := []string{u.User}
	if n >= 8 {
		participants = append(participants, joiner.User)
	}
	add(&apievents.SessionEnd{
		Metadata:           g.meta(TypeSessionEnd, CodeSessionEnd, t),
		UserMetadata:       u,
		SessionMetadata:    sm,
		ConnectionMetadata: conn,
		ServerMetadata:     g.server(nd),
		Interactive:        true,
		Participants:       participants,
		StartTime:          start.UTC(),
		EndTime:            t,
		SessionRecording:   "node",
	})
	upload = &apievents.SessionUpload{
		Metadata:        g.meta(TypeSessionUpload, CodeSessionUpload, t.Add(time.Second)),
		SessionMetadata: sm,
		SessionURL:      "file:///var/lib/teleport/log/upload/streaming/default/" + sessionID,
	}
	return recording, upload
}

var userAgents = []string{
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"tsh/19.0.0",
	"tbot/19.0.0",
}

var commands = []string{
	"uptime",
	"systemctl status nginx",
	"sudo journalctl -u teleport --since '1 hour ago' | tail -n 200",
	"df -h && free -m",
	"kubectl get pods -A",
	"cat /etc/os-release",
	"docker ps --format '{{.Names}} {{.Status}}'",
	"tar czf /tmp/backup.tgz /var/www/html",
}

var queries = []string{
	"SELECT id, email, created_at FROM users WHERE id = $1",
	"UPDATE orders SET status = 'shipped', updated_at = now() WHERE id = $1",
	"SELECT count(*) FROM events WHERE created_at > now() - interval '1 day'",
	"BEGIN",
	"COMMIT",
	"SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at > now() - interval '7 days' ORDER BY o.total DESC LIMIT 50",
}

var terminalOutput = []string{
	"$ ",
	"ls -la\r\n",
	"total 48\r\ndrwxr-xr-x  6 ubuntu ubuntu 4096 Jul 30 10:12 .\r\ndrwxr-xr-x  3 root   root   4096 Jan  4 09:01 ..\r\n-rw-------  1 ubuntu ubuntu 2410 Jul 30 10:11 .bash_history\r\n",
	"\x1b[01;32mubuntu@ip-10-1-10-100\x1b[00m:\x1b[01;34m~\x1b[00m$ ",
	"top - 10:12:44 up 41 days,  2:03,  1 user,  load average: 0.08, 0.03, 0.01\r\n",
	"Active: active (running) since Tue 2026-07-28 08:01:12 UTC; 2 days ago\r\n",
	"exit\r\n",
}

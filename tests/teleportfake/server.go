// Package teleportfake is an in-process double of a Teleport Auth Service for
// tests and benchmarks. It speaks the real gRPC protocol over mutual TLS, so
// the real github.com/gravitational/teleport/api client connects to it with an
// identity file written by WriteIdentityFile and its audit-log methods work:
// Ping, SearchEvents, SearchUnstructuredEvents, StreamSessionEvents,
// StreamUnstructuredSessionEvents, GetEventExportChunks and
// ExportUnstructuredEvents. Every other RPC answers Unimplemented.
//
// Audit log semantics follow Teleport's file audit log: events are kept in
// time order, a page key is the uid of the last event of the page, pages are
// capped at MaxPageBytes, and on the wire order 0 means ascending.
package teleportfake

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	apievents "github.com/gravitational/teleport/api/types/events"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	protov2 "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// Defaults.
const (
	DefaultClusterName  = "fake.teleport.test"
	DefaultListenAddr   = "127.0.0.1:0"
	DefaultMaxPageBytes = 1 << 20 // Teleport caps a page of audit events at 1 MiB
	DefaultMaxLimit     = 10000   // Teleport's max iteration limit
	DefaultChunkSize    = 1000
	DefaultMaxCalls     = 100000
	ServerVersion       = "19.0.0"

	defaultSearchLimit = 500
)

// Full gRPC method names served by the fake.
const (
	MethodPing                            = "/proto.AuthService/Ping"
	MethodGetEvents                       = "/proto.AuthService/GetEvents"
	MethodStreamSessionEvents             = "/proto.AuthService/StreamSessionEvents"
	MethodGetUnstructuredEvents           = "/teleport.auditlog.v1.AuditLogService/GetUnstructuredEvents"
	MethodStreamUnstructuredSessionEvents = "/teleport.auditlog.v1.AuditLogService/StreamUnstructuredSessionEvents"
	MethodGetEventExportChunks            = "/teleport.auditlog.v1.AuditLogService/GetEventExportChunks"
	MethodExportUnstructuredEvents        = "/teleport.auditlog.v1.AuditLogService/ExportUnstructuredEvents"
)

// Config configures Start. Zero values select the defaults.
type Config struct {
	ClusterName  string // default "fake.teleport.test"
	ListenAddr   string // default "127.0.0.1:0" (loopback only)
	MaxPageBytes int    // default 1 MiB: the cap on one page of GetUnstructuredEvents / GetEvents
	MaxLimit     int    // default 10000: a larger request limit fails with InvalidArgument
	// StructuredSessionsOnly makes StreamUnstructuredSessionEvents answer
	// Unimplemented, like Teleport 13.
	StructuredSessionsOnly bool
	// BulkExport enables GetEventExportChunks and ExportUnstructuredEvents;
	// when false both answer Unimplemented, like self-hosted backends.
	BulkExport bool
	ChunkSize  int // bulk export: maximum events per chunk, default 1000
	MaxCalls   int // calls kept for Calls (the oldest are dropped), default 100000
}

// Call is one RPC as the server saw it.
type Call struct {
	Method string // full gRPC method
	User   string // client certificate CN
	Serial string // client certificate serial, lower-case hex
	// Request is the request message. For streaming RPCs it is set once the
	// handler has read it (it stays nil when a fault rejected the call). The
	// legacy gogo requests of proto.AuthService are wrapped;
	// protoadapt.MessageV1Of(Request) returns the original
	// *proto.GetEventsRequest etc.
	Request protov2.Message
	At      time.Time
}

type failure struct {
	code codes.Code
	n    int
}

// Server is a running fake Auth Service.
type Server struct {
	cfg  Config
	pki  *pki
	lis  net.Listener
	grpc *grpc.Server
	done chan struct{}

	mu       sync.RWMutex
	events   []*entry            // sorted by time; stable for equal times
	byID     map[string]*entry   // page keys
	sessions map[string][]*entry // recordings
	chunks   map[string][]*chunk // UTC date -> bulk-export chunks
	chunkSeq map[string]int

	faultMu     sync.Mutex
	deny        bool
	unavailable bool
	latency     time.Duration
	failNext    map[string]*failure

	callMu sync.Mutex
	calls  []*Call
	counts map[string]int
}

// Start creates the PKI, listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.ClusterName == "" {
		cfg.ClusterName = DefaultClusterName
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = DefaultListenAddr
	}
	if cfg.MaxPageBytes <= 0 {
		cfg.MaxPageBytes = DefaultMaxPageBytes
	}
	if cfg.MaxLimit <= 0 {
		cfg.MaxLimit = DefaultMaxLimit
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.MaxCalls <= 0 {
		cfg.MaxCalls = DefaultMaxCalls
	}
	p, err := newPKI(cfg.ClusterName)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		pki:      p,
		done:     make(chan struct{}),
		byID:     make(map[string]*entry),
		sessions: make(map[string][]*entry),
		chunks:   make(map[string][]*chunk),
		chunkSeq: make(map[string]int),
		failNext: make(map[string]*failure),
		counts:   make(map[string]int),
	}

	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(p.userCA.cert)
	tlsConf := &tls.Config{
		Certificates: []tls.Certificate{p.serverTLS},
		ClientCAs:    clientCAs,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS12,
	}
	s.grpc = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsConf)),
		grpc.UnaryInterceptor(s.unaryInterceptor),
		grpc.StreamInterceptor(s.streamInterceptor),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
	)
	proto.RegisterAuthServiceServer(s.grpc, &authService{s: s})
	auditlogpb.RegisterAuditLogServiceServer(s.grpc, &auditLogService{s: s})

	s.lis, err = net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(s.done)
		_ = s.grpc.Serve(s.lis)
	}()
	return s, nil
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// ClusterName is the cluster name reported by Ping and used in the certificates.
func (s *Server) ClusterName() string { return s.cfg.ClusterName }

// Config is the effective configuration (defaults applied).
func (s *Server) Config() Config { return s.cfg }

// Close stops the server, ending open streams, and waits for it to exit.
func (s *Server) Close() {
	s.grpc.Stop()
	<-s.done
}

// Append adds events to the global audit log, kept sorted by event time
// (stable: among equal times, earlier appends come first). The unstructured
// wire form is computed here once. It panics on an event that cannot be
// converted; use TryAppend to get an error instead.
func (s *Server) Append(evs ...apievents.AuditEvent) {
	if err := s.TryAppend(evs...); err != nil {
		panic("teleportfake: " + err.Error())
	}
}

// TryAppend is Append that reports conversion errors (and appends nothing
// then). Events whose uid is already stored replace the old uid in the key
// index only; use unique uids.
//
// With BulkExport, each call seals the new events of each UTC date into new
// export chunks of at most ChunkSize events (in time order); existing chunks
// never change.
func (s *Server) TryAppend(evs ...apievents.AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	batch := make([]*entry, len(evs))
	for i, ev := range evs {
		e, err := newEntry(ev)
		if err != nil {
			return err
		}
		batch[i] = e
	}
	sort.SliceStable(batch, func(i, j int) bool { return batch[i].tn < batch[j].tn })

	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = insertSorted(s.events, batch)
	for _, e := range batch {
		s.byID[e.id] = e
	}
	for start := 0; start < len(batch); {
		date := dateKey(time.Unix(0, batch[start].tn))
		end := start + 1
		for end < len(batch) && end-start < s.cfg.ChunkSize && dateKey(time.Unix(0, batch[end].tn)) == date {
			end++
		}
		s.chunkSeq[date]++
		s.chunks[date] = append(s.chunks[date], &chunk{
			id:      fmt.Sprintf("%s.%06d", date, s.chunkSeq[date]),
			entries: slices.Clip(batch[start:end]),
		})
		start = end
	}
	return nil
}

// AddSession stores (or replaces) the recording of a session for
// StreamSessionEvents and StreamUnstructuredSessionEvents. Events are served
// in the given order. It panics on an event that cannot be converted.
func (s *Server) AddSession(sessionID string, evs []apievents.AuditEvent) {
	rec := make([]*entry, len(evs))
	for i, ev := range evs {
		e, err := newEntry(ev)
		if err != nil {
			panic("teleportfake: session " + sessionID + ": " + err.Error())
		}
		rec[i] = e
	}
	s.mu.Lock()
	s.sessions[sessionID] = rec
	s.mu.Unlock()
}

// Len is the number of events in the global audit log.
func (s *Server) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.events)
}

// SetDeny makes every RPC answer PermissionDenied (trace.AccessDenied on the client).
func (s *Server) SetDeny(on bool) {
	s.faultMu.Lock()
	s.deny = on
	s.faultMu.Unlock()
}

// SetUnavailable makes every RPC answer Unavailable.
func (s *Server) SetUnavailable(on bool) {
	s.faultMu.Lock()
	s.unavailable = on
	s.faultMu.Unlock()
}

// SetLatency adds d to every RPC (before it is handled).
func (s *Server) SetLatency(d time.Duration) {
	s.faultMu.Lock()
	s.latency = d
	s.faultMu.Unlock()
}

// FailNext makes the next n calls of method (a full gRPC method name, see the
// Method constants) fail with code. n <= 0 clears it.
func (s *Server) FailNext(method string, code codes.Code, n int) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if n <= 0 {
		delete(s.failNext, method)
		return
	}
	s.failNext[method] = &failure{code: code, n: n}
}

// fault applies latency and the injected faults to one call, in this order:
// latency, FailNext, SetDeny, SetUnavailable.
func (s *Server) fault(ctx context.Context, method string) error {
	s.faultMu.Lock()
	latency := s.latency
	s.faultMu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return status.FromContextError(ctx.Err()).Err()
		}
	}

	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if f := s.failNext[method]; f != nil {
		f.n--
		if f.n <= 0 {
			delete(s.failNext, method)
		}
		return status.Errorf(f.code, "teleportfake: injected failure of %s", method)
	}
	if s.deny {
		return status.Error(codes.PermissionDenied, `access denied to perform action "list" on "event"`)
	}
	if s.unavailable {
		return status.Error(codes.Unavailable, "teleportfake: auth service unavailable")
	}
	return nil
}

func peerIdentity(ctx context.Context) (user, serial string) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return "", ""
	}
	cert := info.State.PeerCertificates[0]
	return cert.Subject.CommonName, cert.SerialNumber.Text(16)
}

func asV2(req any) protov2.Message {
	switch m := req.(type) {
	case protov2.Message:
		return m
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(m)
	}
	return nil
}

func (s *Server) record(ctx context.Context, method string, req any) *Call {
	user, serial := peerIdentity(ctx)
	c := &Call{Method: method, User: user, Serial: serial, Request: asV2(req), At: time.Now()}
	s.callMu.Lock()
	defer s.callMu.Unlock()
	if len(s.calls) >= s.cfg.MaxCalls {
		keep := s.cfg.MaxCalls / 2
		s.calls = append(s.calls[:0], s.calls[len(s.calls)-keep:]...)
	}
	s.calls = append(s.calls, c)
	s.counts[method]++
	return c
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	s.record(ctx, info.FullMethod, req)
	if err := s.fault(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// recordingStream stores the first request a streaming handler reads.
type recordingStream struct {
	grpc.ServerStream
	s    *Server
	call *Call
	seen bool
}

func (r *recordingStream) RecvMsg(m any) error {
	err := r.ServerStream.RecvMsg(m)
	if err == nil && !r.seen {
		r.seen = true
		r.s.callMu.Lock()
		r.call.Request = asV2(m)
		r.s.callMu.Unlock()
	}
	return err
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	c := s.record(ss.Context(), info.FullMethod, nil)
	if err := s.fault(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, &recordingStream{ServerStream: ss, s: s, call: c})
}

// Calls returns the recorded calls, oldest first (at most MaxCalls).
func (s *Server) Calls() []Call {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		out[i] = *c
	}
	return out
}

// CallCount is the number of calls of method (a full gRPC method name) since
// start or the last ResetCalls.
func (s *Server) CallCount(method string) int {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	return s.counts[method]
}

// ResetCalls forgets the recorded calls and counts.
func (s *Server) ResetCalls() {
	s.callMu.Lock()
	defer s.callMu.Unlock()
	s.calls = nil
	s.counts = make(map[string]int)
}

// sendAll streams items with send, stopping when the client goes away.
func sendAll[T any](ctx context.Context, items []*entry, msg func(int, *entry) *T, send func(*T) error) error {
	for i, e := range items {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		if err := send(msg(i, e)); err != nil {
			return err
		}
	}
	return nil
}

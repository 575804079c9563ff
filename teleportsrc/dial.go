package teleportsrc

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/gravitational/teleport/api/client"
	"github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	apievents "github.com/gravitational/teleport/api/types/events"
	"google.golang.org/grpc"
	protobuf "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Client is the part of the Teleport API the plugin uses, so tests can put a
// fake behind it. Events come back as raw protobuf (see Event).
type Client interface {
	Ping(ctx context.Context) (proto.PingResponse, error)
	// SearchEvents is GetUnstructuredEvents, the call behind the api
	// client's SearchUnstructuredEvents.
	SearchEvents(ctx context.Context, req *auditlogpb.GetUnstructuredEventsRequest) (Page, error)
	// ExportChunks lists the bulk-export chunks of a UTC date
	// (GetEventExportChunks); backends without bulk export answer
	// NotImplemented.
	ExportChunks(ctx context.Context, date time.Time) ([]string, error)
	// ExportEvents streams one chunk from cursor (ExportUnstructuredEvents);
	// fn gets each event and the cursor that resumes after it.
	ExportEvents(ctx context.Context, date time.Time, chunk, cursor string, fn func(ev *Event, cursor string) error) error
	// StreamSession streams a session recording from the event with index
	// start on (StreamUnstructuredSessionEvents; NotImplemented on Teleport 13).
	StreamSession(ctx context.Context, sid string, start int64, fn func(ev *Event) error) error
	// StreamSessionStructured is StreamSession through StreamSessionEvents,
	// which every Teleport version has.
	StreamSessionStructured(ctx context.Context, sid string, start int64, fn func(ev *Event) error) error
	Close() error
}

// Dialer connects to Teleport.
type Dialer func(ctx context.Context, addr string, creds *Credentials, timeout time.Duration) (Client, error)

// Dial connects with the real API client. TLS is always verified: the
// server must present a certificate from the cluster CA in the credentials.
func Dial(ctx context.Context, addr string, creds *Credentials, timeout time.Duration) (Client, error) {
	clt, err := client.New(ctx, client.Config{
		Addrs:       []string{addr},
		Credentials: []client.Credentials{creds.Client()},
		DialTimeout: timeout,
	})
	if err != nil {
		return nil, err
	}
	return apiClient{clt}, nil
}

// maxMessage bounds one streamed event: bulk export and recordings are not
// held to the 1 MiB page cap, so allow what Teleport can store.
const maxMessage = 64 << 20

type apiClient struct{ *client.Client }

// SearchEvents calls the method on the client's own connection, so the
// client's interceptors (error conversion, circuit breaker) still apply;
// only the response decoding differs.
func (c apiClient) SearchEvents(ctx context.Context, req *auditlogpb.GetUnstructuredEventsRequest) (Page, error) {
	msg := &rawMsg{}
	err := c.GetConnection().Invoke(ctx, auditlogpb.AuditLogService_GetUnstructuredEvents_FullMethodName, req, msg, grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		msg.Free()
		return Page{}, err
	}
	page, err := ParsePage(msg.bytes())
	if err != nil {
		msg.Free()
		return Page{}, err
	}
	page.free = msg.Free
	return page, nil
}

func (c apiClient) ExportChunks(ctx context.Context, date time.Time) ([]string, error) {
	req := &auditlogpb.GetEventExportChunksRequest{}
	req.SetDate(timestamppb.New(date))
	s := c.GetEventExportChunks(ctx, req)
	var chunks []string
	for s.Next() {
		chunks = append(chunks, s.Item().GetChunk())
	}
	return chunks, s.Done()
}

func (c apiClient) ExportEvents(ctx context.Context, date time.Time, chunk, cursor string, fn func(*Event, string) error) error {
	req := &auditlogpb.ExportUnstructuredEventsRequest{}
	req.SetDate(timestamppb.New(date))
	req.SetChunk(chunk)
	req.SetCursor(cursor)
	return c.rawStream(ctx, auditlogpb.AuditLogService_ExportUnstructuredEvents_FullMethodName, req, func(b []byte) error {
		ev, next, err := ParseExportEvent(b)
		if err != nil {
			return err
		}
		return fn(&ev, next)
	})
}

func (c apiClient) StreamSession(ctx context.Context, sid string, start int64, fn func(*Event) error) error {
	req := &auditlogpb.StreamUnstructuredSessionEventsRequest{}
	req.SetSessionId(sid)
	req.SetStartIndex(int32(start))
	return c.rawStream(ctx, auditlogpb.AuditLogService_StreamUnstructuredSessionEvents_FullMethodName, req, func(b []byte) error {
		ev, err := ParseEvent(b)
		if err != nil {
			return err
		}
		return fn(&ev)
	})
}

// StreamSessionStructured converts each typed event into the form the
// unstructured call sends (apievents.ToUnstructured, what the Auth Service
// itself uses), so both give the same records.
func (c apiClient) StreamSessionStructured(ctx context.Context, sid string, start int64, fn func(*Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, errs := c.StreamSessionEvents(ctx, sid, start)
	for {
		select {
		case e, ok := <-events:
			if !ok {
				return nil
			}
			u, err := apievents.ToUnstructured(e)
			if err != nil {
				return err
			}
			body, err := protobuf.Marshal(u.GetUnstructured())
			if err != nil {
				return err
			}
			ev := Event{Type: u.GetType(), ID: u.GetId(), Seconds: u.GetTime().GetSeconds(), Nanos: u.GetTime().GetNanos(), Index: u.GetIndex(), Body: body}
			if err := fn(&ev); err != nil {
				return err
			}
		case err := <-errs:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// rawStream runs a server-streaming call on the client's connection and
// hands each message to fn as bytes.
func (c apiClient) rawStream(ctx context.Context, method string, req protobuf.Message, fn func([]byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.GetConnection().NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method,
		grpc.ForceCodecV2(rawCodec{}), grpc.MaxCallRecvMsgSize(maxMessage))
	if err != nil {
		return err
	}
	if err := st.SendMsg(req); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	for {
		var msg rawMsg
		if err := st.RecvMsg(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		err := fn(msg.bytes())
		msg.Free() // fn hands each event over before it returns
		if err != nil {
			return err
		}
	}
}

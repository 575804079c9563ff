package teleportfake

import (
	"context"
	"fmt"

	"github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	apievents "github.com/gravitational/teleport/api/types/events"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// authService implements the parts of the legacy proto.AuthService the
// audit-log readers use. It is separate from auditLogService because the two
// Unimplemented embeds define the same method.
type authService struct {
	proto.UnimplementedAuthServiceServer
	s *Server
}

func (a *authService) Ping(ctx context.Context, _ *proto.PingRequest) (*proto.PingResponse, error) {
	resp := &proto.PingResponse{
		ClusterName:    a.s.cfg.ClusterName,
		ServerVersion:  ServerVersion,
		ServerFeatures: &proto.Features{},
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		resp.RemoteAddr = p.Addr.String()
	}
	return resp, nil
}

func (a *authService) GetEvents(_ context.Context, req *proto.GetEventsRequest) (*proto.Events, error) {
	page, key, err := a.s.search(searchRequest{
		start:    toNanos(req.StartDate),
		end:      toNanos(req.EndDate),
		types:    req.EventTypes,
		limit:    req.Limit,
		startKey: req.StartKey,
		order:    int32(req.Order),
	})
	if err != nil {
		return nil, err
	}
	n := 0
	for _, e := range page {
		n += len(e.oneOf)
	}
	items := make([]byte, 0, n)
	for _, e := range page {
		items = append(items, e.oneOf...)
	}
	// The precomputed items are field 1 (Items) of proto.Events.
	return &proto.Events{LastKey: key, XXX_unrecognized: items}, nil
}

func (a *authService) StreamSessionEvents(req *proto.StreamSessionEventsRequest, stream grpc.ServerStreamingServer[apievents.OneOf]) error {
	rec, err := a.s.sessionEvents(req.SessionID, req.StartIndex)
	if err != nil {
		return err
	}
	return sendAll(stream.Context(), rec,
		func(_ int, e *entry) *apievents.OneOf { return e.structured() },
		stream.Send)
}

// auditLogService implements teleport.auditlog.v1.AuditLogService.
type auditLogService struct {
	auditlogpb.UnimplementedAuditLogServiceServer
	s *Server
}

func (a *auditLogService) GetUnstructuredEvents(_ context.Context, req *auditlogpb.GetUnstructuredEventsRequest) (*auditlogpb.EventsUnstructured, error) {
	page, key, err := a.s.search(searchRequest{
		start:    toNanos(req.GetStartDate().AsTime()),
		end:      toNanos(req.GetEndDate().AsTime()),
		types:    req.GetEventTypes(),
		limit:    req.GetLimit(),
		startKey: req.GetStartKey(),
		order:    int32(req.GetOrder()),
	})
	if err != nil {
		return nil, err
	}
	n := 0
	for _, e := range page {
		n += len(e.item)
	}
	items := make([]byte, 0, n)
	for _, e := range page {
		items = append(items, e.item...)
	}
	resp := &auditlogpb.EventsUnstructured{LastKey: key}
	// The precomputed items are field 1 (items) of EventsUnstructured.
	resp.ProtoReflect().SetUnknown(items)
	return resp, nil
}

func unimplemented(method string) error {
	return status.Errorf(codes.Unimplemented, "method %s not implemented", method)
}

func (a *auditLogService) StreamUnstructuredSessionEvents(req *auditlogpb.StreamUnstructuredSessionEventsRequest, stream grpc.ServerStreamingServer[auditlogpb.EventUnstructured]) error {
	if a.s.cfg.StructuredSessionsOnly {
		return unimplemented("StreamUnstructuredSessionEvents")
	}
	rec, err := a.s.sessionEvents(req.GetSessionId(), req.GetStartIndex())
	if err != nil {
		return err
	}
	return sendAll(stream.Context(), rec,
		func(_ int, e *entry) *auditlogpb.EventUnstructured { return e.unstructured() },
		stream.Send)
}

func (a *auditLogService) GetEventExportChunks(req *auditlogpb.GetEventExportChunksRequest, stream grpc.ServerStreamingServer[auditlogpb.EventExportChunk]) error {
	if !a.s.cfg.BulkExport {
		return unimplemented("GetEventExportChunks")
	}
	if req.GetDate() == nil {
		return status.Error(codes.InvalidArgument, "missing date")
	}
	for _, id := range a.s.chunkIDs(req.GetDate().AsTime()) {
		if err := stream.Context().Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		if err := stream.Send(&auditlogpb.EventExportChunk{Chunk: id}); err != nil {
			return err
		}
	}
	return nil
}

func (a *auditLogService) ExportUnstructuredEvents(req *auditlogpb.ExportUnstructuredEventsRequest, stream grpc.ServerStreamingServer[auditlogpb.ExportEventUnstructured]) error {
	if !a.s.cfg.BulkExport {
		return unimplemented("ExportUnstructuredEvents")
	}
	if req.GetDate() == nil {
		return status.Error(codes.InvalidArgument, "missing date")
	}
	items, first, err := a.s.chunkEvents(req.GetDate().AsTime(), req.GetChunk(), req.GetCursor())
	if err != nil {
		return err
	}
	return sendAll(stream.Context(), items,
		func(i int, e *entry) *auditlogpb.ExportEventUnstructured {
			m := &auditlogpb.ExportEventUnstructured{Cursor: fmt.Sprintf("%s%d", cursorPrefix, first+i)}
			// item is field 1 (event) followed by the EventUnstructured encoding.
			m.ProtoReflect().SetUnknown(e.item)
			return m
		},
		stream.Send)
}

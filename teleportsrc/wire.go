package teleportsrc

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Event is one audit event as Teleport sends it (auditlogpb.EventUnstructured),
// with its body left as protobuf wire bytes for emit to convert in one pass.
type Event struct {
	Type    string
	ID      string // the event's uid, or a hash of it when it has none
	Seconds int64
	Nanos   int32
	Index   int64
	Body    []byte // google.protobuf.Struct, wire format

	// Set by the readers for the sink:
	Session  string // the recording this event belongs to, if any
	Remember bool   // record the uid in the delivered-event index
}

// Time is the event time.
func (e *Event) Time() time.Time { return time.Unix(e.Seconds, int64(e.Nanos)).UTC() }

// Page is one answer of GetUnstructuredEvents. Its events point into the
// response's buffer: Free gives it back once they are handed over.
type Page struct {
	Events  []Event
	LastKey string
	free    func()
}

// Free releases the page's buffer; the events must not be used after.
func (p *Page) Free() {
	if p.free != nil {
		p.free()
		p.free = nil
	}
}

var errWire = errors.New("malformed message from Teleport")

// ParsePage reads teleport.auditlog.v1.EventsUnstructured:
// { repeated EventUnstructured items = 1; string last_key = 2; }
func ParsePage(b []byte) (Page, error) {
	var p Page
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			ev, err := ParseEvent(v)
			if err != nil {
				return err
			}
			p.Events = append(p.Events, ev)
		case num == 2 && typ == protowire.BytesType:
			p.LastKey = string(v)
		}
		return nil
	})
	return p, err
}

// ParseEvent reads teleport.auditlog.v1.EventUnstructured: { string type = 1;
// string id = 2; google.protobuf.Timestamp time = 3; int64 index = 4;
// google.protobuf.Struct unstructured = 5; }
func ParseEvent(b []byte) (Event, error) {
	var ev Event
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			ev.Type = string(v)
		case num == 2 && typ == protowire.BytesType:
			ev.ID = string(v)
		case num == 3 && typ == protowire.BytesType:
			return walk(v, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
				switch {
				case num == 1 && typ == protowire.VarintType:
					ev.Seconds = int64(x)
				case num == 2 && typ == protowire.VarintType:
					ev.Nanos = int32(x)
				}
				return nil
			})
		case num == 4 && typ == protowire.VarintType:
			ev.Index = int64(x)
		case num == 5 && typ == protowire.BytesType:
			ev.Body = v
		}
		return nil
	})
	if err != nil {
		return ev, err
	}
	if ev.Nanos < 0 || ev.Nanos > 999999999 {
		return ev, fmt.Errorf("%w: event %s has nanos %d", errWire, ev.ID, ev.Nanos)
	}
	return ev, nil
}

// ParseExportEvent reads teleport.auditlog.v1.ExportEventUnstructured:
// { EventUnstructured event = 1; string cursor = 2; }
func ParseExportEvent(b []byte) (Event, string, error) {
	var ev Event
	var cursor string
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			var err error
			ev, err = ParseEvent(v)
			return err
		case num == 2 && typ == protowire.BytesType:
			cursor = string(v)
		}
		return nil
	})
	return ev, cursor, err
}

// walk calls fn for each field: v is the payload of a bytes field, x the
// value of a varint or fixed field.
func walk(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errWire
		}
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// rawCodec sends requests as protobuf and hands responses back as bytes, so
// pages skip protobuf's object model (see emit.Encoder).
type rawCodec struct{}

// rawMsg is a response kept in gRPC's pooled buffer until Free.
type rawMsg struct{ buf mem.Buffer }

func (m *rawMsg) bytes() []byte { return m.buf.ReadOnlyData() }

func (m *rawMsg) Free() {
	if m.buf != nil {
		m.buf.Free()
		m.buf = nil
	}
}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*rawMsg)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	m.buf = data.MaterializeToBuffer(mem.DefaultBufferPool())
	return nil
}

// Name keeps the "proto" content subtype: the server sees a normal call.
func (rawCodec) Name() string { return "proto" }

var _ encoding.CodecV2 = rawCodec{}

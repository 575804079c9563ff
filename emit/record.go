// Package emit turns Teleport events into Fluent Bit records and holds them
// in a bounded queue until Fluent Bit collects them in batches.
package emit

import (
	"encoding/binary"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/ugorji/go/codec"
	"google.golang.org/protobuf/types/known/structpb"
)

// EventTime is Fluent Bit's timestamp: msgpack extension type 0 holding
// big-endian seconds and nanoseconds, so the event time keeps its nanoseconds.
type EventTime struct{ time.Time }

type eventTimeExt struct{}

func (eventTimeExt) WriteExt(v any) []byte {
	var t time.Time
	switch x := v.(type) {
	case EventTime:
		t = x.Time
	case *EventTime:
		t = x.Time
	}
	return appendEventTime(nil, t)[2:]
}

func (eventTimeExt) ReadExt(dst any, src []byte) {
	if t, ok := dst.(*EventTime); ok && len(src) == 8 {
		t.Time = time.Unix(int64(binary.BigEndian.Uint32(src)), int64(binary.BigEndian.Uint32(src[4:]))).UTC()
	}
}

// Handle is the msgpack configuration that reads Fluent Bit records back
// (tests, the test host): EventTime as extension 0, str as string.
func Handle() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{WriteExt: true}
	h.RawToString = true
	h.MapType = reflect.TypeOf(map[string]any(nil))
	if err := h.SetBytesExt(reflect.TypeOf(EventTime{}), 0, eventTimeExt{}); err != nil {
		panic(err) // static configuration; fails only if the codec API changes
	}
	return h
}

// AppendRecord appends one event in Fluent Bit's event format
// [[EventTime, {}], body]. The body is the event's fields as Teleport's JSON
// has them, keys sorted so that a replay encodes byte for byte the same.
// protobuf's Struct carries every number as a double, so whole numbers become
// integers again, as they were in Teleport's JSON.
//
// It writes msgpack directly rather than through codec: on the export's hot
// path a reflective encoder cost five times as much CPU per event.
func AppendRecord(dst []byte, t time.Time, body *structpb.Struct) []byte {
	dst = append(dst, 0x92, 0x92)
	dst = appendEventTime(dst, t)
	dst = append(dst, 0x80) // empty metadata map
	return appendStruct(dst, body)
}

func appendEventTime(dst []byte, t time.Time) []byte {
	dst = append(dst, 0xd7, 0x00)
	dst = binary.BigEndian.AppendUint32(dst, uint32(t.Unix()))
	return binary.BigEndian.AppendUint32(dst, uint32(t.Nanosecond()))
}

func appendStruct(dst []byte, s *structpb.Struct) []byte {
	fields := s.GetFields()
	dst = appendMapHeader(dst, len(fields))
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dst = appendString(dst, k)
		dst = appendValue(dst, fields[k])
	}
	return dst
}

func appendValue(dst []byte, v *structpb.Value) []byte {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return appendString(dst, k.StringValue)
	case *structpb.Value_NumberValue:
		return appendNumber(dst, k.NumberValue)
	case *structpb.Value_BoolValue:
		if k.BoolValue {
			return append(dst, 0xc3)
		}
		return append(dst, 0xc2)
	case *structpb.Value_StructValue:
		return appendStruct(dst, k.StructValue)
	case *structpb.Value_ListValue:
		items := k.ListValue.GetValues()
		dst = appendArrayHeader(dst, len(items))
		for _, it := range items {
			dst = appendValue(dst, it)
		}
		return dst
	default:
		return append(dst, 0xc0)
	}
}

func appendNumber(dst []byte, f float64) []byte {
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		dst = append(dst, 0xcb)
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
	}
	n := int64(f)
	switch {
	case n >= 0 && n <= 0x7f:
		return append(dst, byte(n))
	case n >= -32 && n < 0:
		return append(dst, byte(n))
	case n >= 0 && n <= math.MaxUint32:
		if n <= math.MaxUint8 {
			return append(dst, 0xcc, byte(n))
		}
		if n <= math.MaxUint16 {
			return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(n))
		}
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(n))
	case n >= 0:
		return binary.BigEndian.AppendUint64(append(dst, 0xcf), uint64(n))
	case n >= math.MinInt8:
		return append(dst, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(n))
	}
}

func appendString(dst []byte, s string) []byte {
	n := len(s)
	switch {
	case n <= 31:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xda), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
	}
	return append(dst, s...)
}

func appendMapHeader(dst []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(dst, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xde), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(dst, 0xdf), uint32(n))
	}
}

func appendArrayHeader(dst []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(dst, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xdc), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(dst, 0xdd), uint32(n))
	}
}

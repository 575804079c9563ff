// Package emit turns Teleport events into Fluent Bit records and holds them
// in a bounded queue until Fluent Bit collects them in batches.
package emit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/ugorji/go/codec"
	"google.golang.org/protobuf/encoding/protowire"
)

// EventTime is Fluent Bit's timestamp: msgpack extension type 0 holding
// big-endian seconds and nanoseconds, so the event time keeps its nanoseconds.
// fluent-bit-go's FLBTime writes the same bytes, but through a reflecting
// codec.Encoder built per call and an 8-byte slice per record; the one-pass
// encoder here appends them in place (appendEventTime).
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
	return appendEventTime(nil, t.Unix(), int32(t.Nanosecond()))[2:]
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

// Encoder writes Fluent Bit records straight from the protobuf wire bytes of
// a google.protobuf.Struct, the body Teleport sends for every event. Going
// from wire to msgpack in one pass, without building protobuf's object tree,
// is what lets the export keep up with the Auth Service: the tree alone cost
// about 20 µs per event. It is not safe for concurrent use.
type Encoder struct {
	// Message puts the event's JSON text in the record's "message" field
	// instead of the event's fields, as Elastic Agent's filestream sends a
	// JSON log line (what Elastic's teleport integration expects).
	Message bool

	levels [][]entry // scratch per nesting depth, reused between records
	extra  [2]entry  // the fields AppendSessionRecord adds
	sid    []byte    // the session id packed as msgpack, reused between records
	json   []byte    // the JSON text of a message record, reused between records
}

type entry struct {
	key, val []byte
	packed   bool // val is msgpack already (a field the plugin adds)
}

// maxDepth matches protobuf-go's recursion limit.
const maxDepth = 100

var errMalformed = errors.New("malformed protobuf Struct")

// AppendRecord appends one event in Fluent Bit's event format
// [[EventTime, {}], body]. The body is the event's fields as Teleport's JSON
// has them, with keys sorted so that a replay encodes byte for byte the
// same. protobuf's Struct carries every number as a double, so whole numbers
// become integers again, as they were in Teleport's JSON. With Message, the
// body is {"message": the event's JSON text} instead.
func (e *Encoder) AppendRecord(dst []byte, sec int64, nsec int32, body []byte) ([]byte, error) {
	dst = appendHeader(dst, sec, nsec)
	if e.Message {
		return e.appendMessage(dst, body, nil)
	}
	return e.appendStruct(dst, body, 0, nil)
}

// appendHeader starts a record: [[EventTime, {}], and the body follows.
func appendHeader(dst []byte, sec int64, nsec int32) []byte {
	dst = append(dst, 0x92, 0x92)
	dst = appendEventTime(dst, sec, nsec)
	return append(dst, 0x80) // empty metadata map
}

// StreamKey is the field that marks session recording events, so a
// rewrite_tag filter can route them apart from audit events.
const StreamKey = "teleport_stream"

// AppendSessionRecord is AppendRecord for an event of a session recording:
// the body also gets teleport_stream: "session", and the session id as sid
// when the event has none (print events do not carry it). With Message, both
// sit beside "message", which holds the event as it is.
func (e *Encoder) AppendSessionRecord(dst []byte, sec int64, nsec int32, body []byte, sid string) ([]byte, error) {
	dst = appendHeader(dst, sec, nsec)
	e.sid = appendStr(e.sid[:0], sid)
	e.extra = [2]entry{ // sorted by key, after "message"
		{key: sidKey, val: e.sid, packed: true},
		{key: streamKey, val: sessionValue, packed: true},
	}
	if e.Message {
		return e.appendMessage(dst, body, e.extra[:])
	}
	return e.appendStruct(dst, body, 0, e.extra[:])
}

// Read-only, shared by every Encoder.
var (
	streamKey    = []byte(StreamKey)
	sidKey       = []byte("sid")
	sessionValue = appendStr(nil, "session")
)

func appendEventTime(dst []byte, sec int64, nsec int32) []byte {
	dst = append(dst, 0xd7, 0x00)
	dst = binary.BigEndian.AppendUint32(dst, uint32(sec))
	return binary.BigEndian.AppendUint32(dst, uint32(nsec))
}

// appendStruct: message Struct { map<string, Value> fields = 1; }
// extra fields are added where the Struct lacks them.
func (e *Encoder) appendStruct(dst, b []byte, depth int, extra []entry) ([]byte, error) {
	entries, err := e.structEntries(b, depth, extra)
	if err != nil {
		return nil, err
	}
	dst = appendMapHeader(dst, len(entries))
	for _, kv := range entries {
		dst = appendString(dst, kv.key)
		if kv.packed {
			dst = append(dst, kv.val...)
			continue
		}
		if dst, err = e.appendValue(dst, kv.val, depth+1); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// structEntries returns the fields of a Struct (plus extra) sorted by key, in
// the encoder's scratch for this depth; deeper levels use their own.
func (e *Encoder) structEntries(b []byte, depth int, extra []entry) ([]entry, error) {
	if depth >= maxDepth {
		return nil, errors.New("protobuf Struct nested too deeply")
	}
	for len(e.levels) <= depth { // lists nest without a struct level in between
		e.levels = append(e.levels, nil)
	}
	// The plugin's fields go first, so that with a stable sort the event's
	// own field of the same name comes later and wins.
	entries := append(e.levels[depth][:0], extra...)
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		var kv entry
		err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
			switch {
			case num == 1 && typ == protowire.BytesType:
				kv.key = v
			case num == 2 && typ == protowire.BytesType:
				kv.val = v
			}
			return nil
		})
		entries = append(entries, kv)
		return err
	})
	e.levels[depth] = entries // keep the grown scratch, even on error
	if err != nil {
		return nil, err
	}
	// Sorted keys; for a repeated key the last one wins, as in protobuf.
	slices.SortStableFunc(entries, func(a, b entry) int { return bytes.Compare(a.key, b.key) })
	n := 0
	for i := range entries {
		if i+1 < len(entries) && bytes.Equal(entries[i].key, entries[i+1].key) {
			continue
		}
		entries[n] = entries[i]
		n++
	}
	return entries[:n], nil
}

// value is one decoded google.protobuf.Value: its kind (the oneof's field
// number) and what it holds.
type value struct {
	kind    protowire.Number
	scalar  uint64 // null, number (as float64 bits), bool
	payload []byte // string, Struct, ListValue
}

// Kinds of a Value.
const (
	kindNumber = 2
	kindString = 3
	kindBool   = 4
	kindStruct = 5
	kindList   = 6
)

// decodeValue: message Value { oneof kind { NullValue null_value = 1;
// double number_value = 2; string string_value = 3; bool bool_value = 4;
// Struct struct_value = 5; ListValue list_value = 6; } }
func decodeValue(b []byte) (value, error) {
	var v value
	err := fields(b, func(num protowire.Number, typ protowire.Type, p []byte) error {
		switch {
		case num == 1 && typ == protowire.VarintType, num == kindBool && typ == protowire.VarintType:
			x, n := protowire.ConsumeVarint(p)
			if n < 0 {
				return errMalformed
			}
			v = value{kind: num, scalar: x}
		case num == kindNumber && typ == protowire.Fixed64Type:
			x, n := protowire.ConsumeFixed64(p)
			if n < 0 {
				return errMalformed
			}
			v = value{kind: num, scalar: x}
		case (num == kindString || num == kindStruct || num == kindList) && typ == protowire.BytesType:
			v = value{kind: num, payload: p}
		}
		return nil
	})
	return v, err
}

func (e *Encoder) appendValue(dst, b []byte, depth int) ([]byte, error) {
	v, err := decodeValue(b)
	if err != nil {
		return nil, err
	}
	switch v.kind {
	case kindNumber:
		return appendNumber(dst, math.Float64frombits(v.scalar)), nil
	case kindString:
		return appendString(dst, v.payload), nil
	case kindBool:
		if v.scalar != 0 {
			return append(dst, 0xc3), nil
		}
		return append(dst, 0xc2), nil
	case kindStruct:
		return e.appendStruct(dst, v.payload, depth, nil)
	case kindList:
		return e.appendList(dst, v.payload, depth)
	default: // null_value, or no kind set
		return append(dst, 0xc0), nil
	}
}

// appendList: message ListValue { repeated Value values = 1; }
func (e *Encoder) appendList(dst, b []byte, depth int) ([]byte, error) {
	if depth >= maxDepth {
		return nil, errors.New("protobuf Struct nested too deeply")
	}
	count := 0
	err := fields(b, func(num protowire.Number, typ protowire.Type, _ []byte) error {
		if num == 1 && typ == protowire.BytesType {
			count++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	dst = appendArrayHeader(dst, count)
	err = fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		var err error
		dst, err = e.appendValue(dst, v, depth+1)
		return err
	})
	return dst, err
}

// fields calls fn for each field of a message. For bytes fields v is the
// payload; for other wire types it is the encoded value.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			payload, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return errMalformed
			}
			v, n = payload, m
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return errMalformed
			}
			v = b[:n]
		}
		if err := fn(num, typ, v); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// wholeNumber is f as an integer, if it is a whole number that fits one:
// protobuf's Struct carries every number as a double, and Teleport's JSON
// had the whole ones as integers.
func wholeNumber(f float64) (int64, bool) {
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

func appendNumber(dst []byte, f float64) []byte {
	n, whole := wholeNumber(f)
	if !whole {
		dst = append(dst, 0xcb)
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
	}
	switch {
	case n >= -32 && n <= 0x7f:
		return append(dst, byte(n))
	case n >= 0 && n <= math.MaxUint8:
		return append(dst, 0xcc, byte(n))
	case n >= 0 && n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(n))
	case n >= 0 && n <= math.MaxUint32:
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

func appendString(dst, s []byte) []byte {
	return append(appendStrHeader(dst, len(s)), s...)
}

func appendStr(dst []byte, s string) []byte {
	return append(appendStrHeader(dst, len(s)), s...)
}

func appendStrHeader(dst []byte, n int) []byte {
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
	return dst
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

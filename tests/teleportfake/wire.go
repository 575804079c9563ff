package teleportfake

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	apievents "github.com/gravitational/teleport/api/types/events"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// This file computes the wire form of stored events once, on Append.
//
// encodeUnstructured produces the same message as api's events.ToUnstructured
// (JSON of the event, parsed into a google.protobuf.Struct, plus "data" for
// print events; id = uid or SHA-256 of the JSON) but writes the protobuf
// encoding straight from the JSON bytes instead of going through protojson
// and a map-based Struct, which is several times faster. Anything it does not
// handle falls back to events.ToUnstructured. Tests check that both agree.

// encodeUnstructured returns the protobuf encoding of the
// auditlogpb.EventUnstructured of ev, its id and its type.
func encodeUnstructured(ev apievents.AuditEvent) (body []byte, id string, err error) {
	payload, err := json.Marshal(ev)
	if err != nil {
		return nil, "", err
	}
	id = ev.GetID()
	if id == "" {
		sum := sha256.Sum256(payload)
		id = hex.EncodeToString(sum[:])
	}
	var extra []byte // additional Struct fields
	if p, ok := ev.(*apievents.SessionPrint); ok {
		extra = appendStringField(nil, "data", base64.StdEncoding.EncodeToString(p.Data))
	}
	st, ok := jsonToStruct(payload, extra)
	if !ok {
		return slowUnstructured(ev)
	}

	t := ev.GetTime()
	var ts []byte
	if s := t.Unix(); s != 0 {
		ts = protowire.AppendTag(ts, 1, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(s))
	}
	if n := t.Nanosecond(); n != 0 {
		ts = protowire.AppendTag(ts, 2, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(n))
	}

	typ := ev.GetType()
	body = make([]byte, 0, len(st)+len(typ)+len(id)+len(ts)+40)
	if typ != "" {
		body = protowire.AppendTag(body, 1, protowire.BytesType)
		body = protowire.AppendString(body, typ)
	}
	if id != "" {
		body = protowire.AppendTag(body, 2, protowire.BytesType)
		body = protowire.AppendString(body, id)
	}
	body = protowire.AppendTag(body, 3, protowire.BytesType)
	body = protowire.AppendBytes(body, ts)
	if idx := ev.GetIndex(); idx != 0 {
		body = protowire.AppendTag(body, 4, protowire.VarintType)
		body = protowire.AppendVarint(body, uint64(idx))
	}
	body = protowire.AppendTag(body, 5, protowire.BytesType)
	body = protowire.AppendBytes(body, st)
	return body, id, nil
}

// slowUnstructured is the reference conversion.
func slowUnstructured(ev apievents.AuditEvent) ([]byte, string, error) {
	eu, err := apievents.ToUnstructured(ev)
	if err != nil {
		return nil, "", err
	}
	body, err := proto.Marshal(eu)
	return body, eu.GetId(), err
}

// encodeOneOf returns the gogo-protobuf encoding of events.OneOf for ev (the
// structured form GetEvents and StreamSessionEvents send).
func encodeOneOf(ev apievents.AuditEvent) ([]byte, error) {
	oneOf, err := apievents.ToOneOf(ev)
	if err != nil {
		return nil, err
	}
	return oneOf.Marshal()
}

// withTag prefixes a message encoding with the tag and length of field 1, the
// field that holds it in every response message here (items / event).
func withTag(body []byte) (item []byte, off int) {
	item = make([]byte, 0, len(body)+1+protowire.SizeVarint(uint64(len(body))))
	item = protowire.AppendTag(item, 1, protowire.BytesType)
	item = protowire.AppendVarint(item, uint64(len(body)))
	off = len(item)
	return append(item, body...), off
}

// google.protobuf.Struct / Value / ListValue field numbers.
const (
	structFields   = 1 // Struct: map<string, Value> fields = 1
	mapKey         = 1
	mapValue       = 2
	valueNull      = 1
	valueNumber    = 2
	valueString    = 3
	valueBool      = 4
	valueStruct    = 5
	valueList      = 6
	listValues     = 1
	maxStructDepth = 100
)

func appendStringField(dst []byte, key, val string) []byte {
	var v []byte
	v = protowire.AppendTag(v, valueString, protowire.BytesType)
	v = protowire.AppendString(v, val)
	return appendMapEntry(dst, []byte(key), v)
}

func appendMapEntry(dst, key, val []byte) []byte {
	n := 1 + protowire.SizeBytes(len(key)) + 1 + protowire.SizeBytes(len(val))
	dst = protowire.AppendTag(dst, structFields, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(n))
	dst = protowire.AppendTag(dst, mapKey, protowire.BytesType)
	dst = protowire.AppendBytes(dst, key)
	dst = protowire.AppendTag(dst, mapValue, protowire.BytesType)
	return protowire.AppendBytes(dst, val)
}

var errFallback = errors.New("use the reference conversion")

// jsonEncoder turns JSON into google.protobuf.Struct wire format. Nested
// messages are encoded into per-depth scratch buffers and then copied, with
// their length, into the parent.
type jsonEncoder struct {
	data []byte
	pos  int
	kbuf [][]byte // object keys, per depth
	vbuf [][]byte // Value messages, per depth
	obuf [][]byte // Struct / ListValue / string contents, per depth
}

var encoderPool = sync.Pool{New: func() any { return &jsonEncoder{} }}

// jsonToStruct encodes the JSON object data as a Struct, followed by the
// already encoded Struct fields in extra. ok is false when data is something
// the fast path does not handle (the caller then uses the reference path).
func jsonToStruct(data, extra []byte) (out []byte, ok bool) {
	if !utf8.Valid(data) {
		return nil, false
	}
	e := encoderPool.Get().(*jsonEncoder)
	defer func() {
		e.data = nil
		encoderPool.Put(e)
	}()
	e.data, e.pos = data, 0
	e.ws()
	if e.pos >= len(e.data) || e.data[e.pos] != '{' {
		return nil, false
	}
	out, err := e.object(make([]byte, 0, len(data)+len(data)/2+len(extra)), 0)
	if err != nil {
		return nil, false
	}
	e.ws()
	if e.pos != len(e.data) {
		return nil, false
	}
	return append(out, extra...), true
}

func grow(bufs *[][]byte, depth int) []byte {
	for len(*bufs) <= depth {
		*bufs = append(*bufs, nil)
	}
	return (*bufs)[depth][:0]
}

func (e *jsonEncoder) ws() {
	for e.pos < len(e.data) {
		switch e.data[e.pos] {
		case ' ', '\t', '\n', '\r':
			e.pos++
		default:
			return
		}
	}
}

// object parses an object (at '{') and appends the Struct fields to dst.
func (e *jsonEncoder) object(dst []byte, depth int) ([]byte, error) {
	if depth > maxStructDepth {
		return nil, errFallback
	}
	e.pos++ // '{'
	e.ws()
	if e.pos < len(e.data) && e.data[e.pos] == '}' {
		e.pos++
		return dst, nil
	}
	for {
		e.ws()
		key, err := e.str(grow(&e.kbuf, depth))
		if err != nil {
			return nil, err
		}
		e.kbuf[depth] = key
		e.ws()
		if e.pos >= len(e.data) || e.data[e.pos] != ':' {
			return nil, errFallback
		}
		e.pos++
		val, err := e.value(grow(&e.vbuf, depth), depth)
		if err != nil {
			return nil, err
		}
		e.vbuf[depth] = val
		dst = appendMapEntry(dst, key, val)
		if done, err := e.next('}'); done || err != nil {
			return dst, err
		}
	}
}

// next reads what follows an element: ',' (more follow) or end (the last).
func (e *jsonEncoder) next(end byte) (last bool, err error) {
	e.ws()
	if e.pos >= len(e.data) {
		return false, errFallback
	}
	switch e.data[e.pos] {
	case ',':
		e.pos++
		return false, nil
	case end:
		e.pos++
		return true, nil
	}
	return false, errFallback
}

// list parses an array (at '[') and appends the ListValue content to dst.
func (e *jsonEncoder) list(dst []byte, depth int) ([]byte, error) {
	if depth > maxStructDepth {
		return nil, errFallback
	}
	e.pos++ // '['
	e.ws()
	if e.pos < len(e.data) && e.data[e.pos] == ']' {
		e.pos++
		return dst, nil
	}
	for {
		val, err := e.value(grow(&e.vbuf, depth), depth)
		if err != nil {
			return nil, err
		}
		e.vbuf[depth] = val
		dst = protowire.AppendTag(dst, listValues, protowire.BytesType)
		dst = protowire.AppendBytes(dst, val)
		if done, err := e.next(']'); done || err != nil {
			return dst, err
		}
	}
}

// value parses one JSON value and appends the Value message content to dst.
// It uses obuf[depth] and the buffers of deeper levels.
func (e *jsonEncoder) value(dst []byte, depth int) ([]byte, error) {
	e.ws()
	if e.pos >= len(e.data) {
		return nil, errFallback
	}
	var (
		inner []byte
		err   error
		field protowire.Number
	)
	switch c := e.data[e.pos]; {
	case c == '{':
		inner, err = e.object(grow(&e.obuf, depth), depth+1)
		field = valueStruct
	case c == '[':
		inner, err = e.list(grow(&e.obuf, depth), depth+1)
		field = valueList
	case c == '"':
		inner, err = e.str(grow(&e.obuf, depth))
		field = valueString
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []struct {
			text string
			tag  protowire.Number
			v    uint64
		}{{"true", valueBool, 1}, {"false", valueBool, 0}, {"null", valueNull, 0}} {
			if len(e.data)-e.pos >= len(lit.text) && string(e.data[e.pos:e.pos+len(lit.text)]) == lit.text {
				e.pos += len(lit.text)
				dst = protowire.AppendTag(dst, lit.tag, protowire.VarintType)
				return protowire.AppendVarint(dst, lit.v), nil
			}
		}
		return nil, errFallback
	case c == '-' || (c >= '0' && c <= '9'):
		start := e.pos
		for e.pos < len(e.data) {
			c := e.data[e.pos]
			if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
				e.pos++
				continue
			}
			break
		}
		f, err := strconv.ParseFloat(string(e.data[start:e.pos]), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, errFallback
		}
		dst = protowire.AppendTag(dst, valueNumber, protowire.Fixed64Type)
		return protowire.AppendFixed64(dst, math.Float64bits(f)), nil
	default:
		return nil, errFallback
	}
	if err != nil {
		return nil, err
	}
	e.obuf[depth] = inner
	dst = protowire.AppendTag(dst, field, protowire.BytesType)
	return protowire.AppendBytes(dst, inner), nil
}

// str parses a JSON string and appends its decoded bytes to dst.
func (e *jsonEncoder) str(dst []byte) ([]byte, error) {
	if e.pos >= len(e.data) || e.data[e.pos] != '"' {
		return nil, errFallback
	}
	e.pos++
	for e.pos < len(e.data) {
		// Copy the run of plain bytes.
		start := e.pos
		for e.pos < len(e.data) {
			c := e.data[e.pos]
			if c == '"' || c == '\\' || c < 0x20 {
				break
			}
			e.pos++
		}
		dst = append(dst, e.data[start:e.pos]...)
		if e.pos >= len(e.data) {
			break
		}
		switch c := e.data[e.pos]; {
		case c == '"':
			e.pos++
			return dst, nil
		case c < 0x20:
			return nil, errFallback
		}
		// Escape.
		if e.pos+1 >= len(e.data) {
			return nil, errFallback
		}
		esc := e.data[e.pos+1]
		e.pos += 2
		switch esc {
		case '"', '\\', '/':
			dst = append(dst, esc)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := e.hex4()
			if !ok {
				return nil, errFallback
			}
			if utf16.IsSurrogate(r) {
				// A pair must follow; anything else goes the reference way.
				if e.pos+1 >= len(e.data) || e.data[e.pos] != '\\' || e.data[e.pos+1] != 'u' {
					return nil, errFallback
				}
				e.pos += 2
				r2, ok := e.hex4()
				if !ok {
					return nil, errFallback
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return nil, errFallback
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return nil, errFallback
		}
	}
	return nil, errFallback
}

func (e *jsonEncoder) hex4() (rune, bool) {
	if e.pos+4 > len(e.data) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(e.data[e.pos:e.pos+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	e.pos += 4
	return rune(n), true
}

package emit

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// MessageKey is the record field that holds the event's JSON text when the
// Encoder writes messages: the field Elastic Agent's filestream fills and
// Elastic's teleport integration decodes.
const MessageKey = "message"

var messageKey = []byte(MessageKey)

// appendMessage writes the body {"message": JSON text, extra...}; extra is
// packed already and sorted by key, each key after "message".
func (e *Encoder) appendMessage(dst, body []byte, extra []entry) ([]byte, error) {
	js, err := e.AppendJSON(e.json[:0], body)
	if err != nil {
		return nil, err
	}
	e.json = js
	dst = appendMapHeader(dst, 1+len(extra))
	dst = appendString(dst, messageKey)
	dst = appendString(dst, js)
	for _, kv := range extra {
		dst = appendString(dst, kv.key)
		dst = append(dst, kv.val...)
	}
	return dst, nil
}

// AppendJSON appends the JSON text of a google.protobuf.Struct given as its
// protobuf wire bytes, straight from the wire as AppendRecord does: keys
// sorted, whole numbers as integers, so that it decodes to the event as
// Teleport's JSON has it.
func (e *Encoder) AppendJSON(dst, body []byte) ([]byte, error) {
	return e.appendJSONStruct(dst, body, 0)
}

func (e *Encoder) appendJSONStruct(dst, b []byte, depth int) ([]byte, error) {
	entries, err := e.structEntries(b, depth, nil)
	if err != nil {
		return nil, err
	}
	dst = append(dst, '{')
	for i, kv := range entries {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, kv.key)
		dst = append(dst, ':')
		if dst, err = e.appendJSONValue(dst, kv.val, depth+1); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

func (e *Encoder) appendJSONValue(dst, b []byte, depth int) ([]byte, error) {
	v, err := decodeValue(b)
	if err != nil {
		return nil, err
	}
	switch v.kind {
	case kindNumber:
		return appendJSONNumber(dst, math.Float64frombits(v.scalar))
	case kindString:
		return appendJSONString(dst, v.payload), nil
	case kindBool:
		return strconv.AppendBool(dst, v.scalar != 0), nil
	case kindStruct:
		return e.appendJSONStruct(dst, v.payload, depth)
	case kindList:
		return e.appendJSONList(dst, v.payload, depth)
	default: // null_value, or no kind set
		return append(dst, "null"...), nil
	}
}

func (e *Encoder) appendJSONList(dst, b []byte, depth int) ([]byte, error) {
	if depth >= maxDepth {
		return nil, errors.New("protobuf Struct nested too deeply")
	}
	dst = append(dst, '[')
	first := true
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		var err error
		dst, err = e.appendJSONValue(dst, v, depth+1)
		return err
	})
	if err != nil {
		return nil, err
	}
	return append(dst, ']'), nil
}

// appendJSONNumber writes f as encoding/json does, and whole numbers as
// integers. NaN and infinities have no JSON form; protojson refuses them too.
func appendJSONNumber(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errors.New("the protobuf Struct holds a NaN or infinite number, which JSON cannot")
	}
	if n, whole := wholeNumber(f); whole {
		return strconv.AppendInt(dst, n, 10), nil
	}
	format := byte('f')
	if abs := math.Abs(f); abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' { // 1e-07 -> 1e-7, as encoding/json writes it
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string. Bytes that are not UTF-8
// become U+FFFD, as encoding/json makes them.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

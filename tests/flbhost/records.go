package flbhost

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"reflect"
	"time"

	"github.com/ugorji/go/codec"
)

// Record is one log event accepted by the host.
type Record struct {
	Instance int       // instance index that produced it
	Frame    int       // index of the buffer (frame) it came in, over the whole file
	Time     time.Time // EventTime, nanoseconds kept (UTC)
	Metadata map[string]any
	Body     map[string]any
}

// ErrIncompleteFrame is returned (wrapped) by ReadRecords when the file ends
// in the middle of a frame. The records of all complete frames are returned
// with it. The host writes each frame with one write(2) on an O_APPEND file,
// so this only happens if the host is killed during a very large write.
var ErrIncompleteFrame = errors.New("incomplete trailing frame")

// ReadRecords decodes a host records file: a sequence of frames, each a
// little-endian uint32 instance index, a little-endian uint32 length and
// that many bytes of msgpack (one collect buffer). Every event must be
// [[EventTime, map], map] or [EventTime, map] with string map keys; any
// other shape, a group marker, or a leftover byte is an error. An
// incomplete trailing frame is ignored and reported with ErrIncompleteFrame.
func ReadRecords(path string) ([]Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return DecodeFrames(data)
}

// DecodeFrames is ReadRecords on bytes.
func DecodeFrames(data []byte) ([]Record, error) {
	var out []Record
	off := 0
	for frame := 0; off < len(data); frame++ {
		if len(data)-off < 8 {
			return out, fmt.Errorf("%w: %d header bytes at offset %d", ErrIncompleteFrame, len(data)-off, off)
		}
		inst := binary.LittleEndian.Uint32(data[off:])
		n := binary.LittleEndian.Uint32(data[off+4:])
		if uint64(len(data)-off-8) < uint64(n) {
			return out, fmt.Errorf("%w: frame %d at offset %d declares %d bytes, %d present",
				ErrIncompleteFrame, frame, off, n, len(data)-off-8)
		}
		recs, err := DecodeEvents(data[off+8 : off+8+int(n)])
		if err != nil {
			return out, fmt.Errorf("frame %d (instance %d, file offset %d): %w", frame, inst, off, err)
		}
		for i := range recs {
			recs[i].Instance = int(inst)
			recs[i].Frame = frame
		}
		out = append(out, recs...)
		off += 8 + int(n)
	}
	return out, nil
}

func msgpackHandle() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.RawToString = true
	h.MapType = reflect.TypeOf(map[string]interface{}(nil))
	return h
}

// DecodeEvents strictly decodes one collect buffer (concatenated events),
// the way ReadRecords decodes a frame. Instance and Frame are left 0. It is
// also usable on a plugin's encoder output in unit tests.
func DecodeEvents(buf []byte) ([]Record, error) {
	var out []Record
	dec := codec.NewDecoderBytes(buf, msgpackHandle())
	for i := 0; dec.NumBytesRead() < len(buf); i++ {
		start := dec.NumBytesRead()
		var v interface{}
		if err := dec.Decode(&v); err != nil {
			return out, fmt.Errorf("event %d at byte %d: %w", i, start, err)
		}
		rec, err := toRecord(v)
		if err != nil {
			return out, fmt.Errorf("event %d at byte %d: %w", i, start, err)
		}
		out = append(out, rec)
	}
	if dec.NumBytesRead() != len(buf) {
		return out, fmt.Errorf("decoder read %d of %d bytes", dec.NumBytesRead(), len(buf))
	}
	return out, nil
}

func typeName(v interface{}) string {
	if v == nil {
		return "nil"
	}
	return reflect.TypeOf(v).String()
}

func toRecord(v interface{}) (Record, error) {
	root, ok := v.([]interface{})
	if !ok {
		return Record{}, fmt.Errorf("event is %s, want a 2-element array", typeName(v))
	}
	if len(root) != 2 {
		return Record{}, fmt.Errorf("event has %d elements, want 2", len(root))
	}
	var rec Record
	var err error
	switch h := root[0].(type) {
	case []interface{}:
		if len(h) != 2 {
			return Record{}, fmt.Errorf("header has %d elements, want [EventTime, metadata]", len(h))
		}
		if rec.Time, err = eventTime(h[0]); err != nil {
			return Record{}, err
		}
		meta, ok := h[1].(map[string]interface{})
		if !ok {
			return Record{}, fmt.Errorf("metadata is %s, want a map", typeName(h[1]))
		}
		rec.Metadata = meta
	default:
		if rec.Time, err = eventTime(root[0]); err != nil {
			return Record{}, err
		}
		rec.Metadata = map[string]interface{}{}
	}
	body, ok := root[1].(map[string]interface{})
	if !ok {
		return Record{}, fmt.Errorf("body is %s, want a map", typeName(root[1]))
	}
	rec.Body = body
	return rec, nil
}

func eventTime(v interface{}) (time.Time, error) {
	var ext codec.RawExt
	switch e := v.(type) {
	case codec.RawExt:
		ext = e
	case *codec.RawExt:
		ext = *e
	default:
		return time.Time{}, fmt.Errorf("timestamp is %s, want EventTime (ext type 0)", typeName(v))
	}
	if ext.Tag != 0 || len(ext.Data) != 8 {
		return time.Time{}, fmt.Errorf("timestamp is ext type %d with %d bytes, want EventTime (ext type 0, 8 bytes)", ext.Tag, len(ext.Data))
	}
	sec := binary.BigEndian.Uint32(ext.Data[0:4])
	nsec := binary.BigEndian.Uint32(ext.Data[4:8])
	if sec >= 0xfffffffe {
		return time.Time{}, fmt.Errorf("group marker (seconds 0x%08x) where a record was expected", sec)
	}
	if nsec >= 1e9 {
		return time.Time{}, fmt.Errorf("EventTime nanoseconds %d >= 1e9", nsec)
	}
	return time.Unix(int64(sec), int64(nsec)).UTC(), nil
}

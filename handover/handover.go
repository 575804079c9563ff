// Package handover keeps an exporter's position in a Kubernetes ConfigMap,
// so that the pod that takes the Lease over continues where the last one
// stopped. Every write is conditioned on the resourceVersion this holder
// read or wrote last: a deposed holder's late write fails instead of
// overwriting a newer position.
package handover

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/klauspost/compress/zstd"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
)

// ConfigMap keys.
const (
	keyHolder = "holder"
	keySaved  = "saved"
	keyClean  = "clean"
	keySpace  = "space"
	keyState  = "state.zst"
)

// MaxStateBytes bounds the compressed state: a ConfigMap holds at most
// 1 MiB of data, and the other keys and metadata need room too.
const MaxStateBytes = 900 * 1024

// ErrFenced means another holder wrote the state since this one last read
// or wrote it: this holder is no longer the exporter.
var ErrFenced = errors.New("the handed-over state was written by another holder")

// State is what a holder hands over: the key space of its input in the
// db (positions, chunk cursors, recordings, and the recent part
// of the delivered-event index).
type State struct {
	Space  string // the key space's name: cluster/input
	Pairs  []db.Pair
	Holder string
	Saved  time.Time
	// Clean: written as the holder stopped, after Fluent Bit took all it
	// handed over; else the holder may have died with records in its buffer.
	Clean bool
}

// Keeper reads and writes one ConfigMap for one holder.
type Keeper struct {
	client    corev1client.ConfigMapsGetter
	namespace string
	name      string
	identity  string
	rv        string // the resourceVersion read or written last
}

// New returns a keeper of ConfigMap namespace/name for this holder.
func New(client corev1client.ConfigMapsGetter, namespace, name, identity string) *Keeper {
	return &Keeper{client: client, namespace: namespace, name: name, identity: identity}
}

// Describe names the ConfigMap, for log lines.
func (k *Keeper) Describe() string { return "ConfigMap " + k.namespace + "/" + k.name }

// Claim reads the handed-over state (nil if none yet) and marks this
// holder as the writer, creating the ConfigMap if it is missing. From then
// on, an earlier holder's writes fail. prevVersion is the resourceVersion
// the state was read at; version is the one after the claim.
func (k *Keeper) Claim(ctx context.Context) (st *State, prevVersion, version string, err error) {
	cms := k.client.ConfigMaps(k.namespace)
	for {
		cm, err := cms.Get(ctx, k.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			created, err := cms.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: k.name, Namespace: k.namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "fluent-bit-teleport"}},
				Data:       map[string]string{keyHolder: k.identity},
			}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return nil, "", "", fmt.Errorf("creating %s: %w", k.Describe(), err)
			}
			k.rv = created.ResourceVersion
			return nil, "", k.rv, nil
		}
		if err != nil {
			return nil, "", "", fmt.Errorf("reading %s: %w", k.Describe(), err)
		}
		st, err := decode(cm)
		if err != nil {
			return nil, "", "", fmt.Errorf("%s: %w", k.Describe(), err)
		}
		prev := cm.ResourceVersion
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[keyHolder] = k.identity
		updated, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue // written between the read and the claim: read again
		}
		if err != nil {
			return nil, "", "", fmt.Errorf("claiming %s: %w", k.Describe(), err)
		}
		k.rv = updated.ResourceVersion
		return st, prev, k.rv, nil
	}
}

// Save writes st if nobody else wrote since this holder's claim or last
// save (ErrFenced otherwise) and returns the new resourceVersion. A state
// too large for a ConfigMap is saved without its index entries
// (indexLeftOut): a successor may then send late events twice, but skips
// none.
func (k *Keeper) Save(ctx context.Context, st State) (version string, indexLeftOut bool, err error) {
	packed := encode(st.Pairs)
	if len(packed) > MaxStateBytes {
		packed, indexLeftOut = encode(withoutIndex(st.Pairs)), true
	}
	if len(packed) > MaxStateBytes {
		return "", false, fmt.Errorf("the position state is %d bytes compressed, over the %d a ConfigMap can hold", len(packed), MaxStateBytes)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: k.name, Namespace: k.namespace, ResourceVersion: k.rv,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "fluent-bit-teleport"}},
		Data: map[string]string{
			keyHolder: k.identity, keySpace: st.Space,
			keySaved: st.Saved.UTC().Format(time.RFC3339Nano), keyClean: strconv.FormatBool(st.Clean),
		},
		BinaryData: map[string][]byte{keyState: packed},
	}
	updated, err := k.client.ConfigMaps(k.namespace).Update(ctx, cm, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return "", false, fmt.Errorf("%w (%s changed since resourceVersion %s)", ErrFenced, k.Describe(), k.rv)
	}
	if err != nil {
		return "", false, fmt.Errorf("writing %s: %w", k.Describe(), err)
	}
	k.rv = updated.ResourceVersion
	return k.rv, indexLeftOut, nil
}

// Size is the compressed size of a state, for the size evidence.
func Size(pairs []db.Pair) int { return len(encode(pairs)) }

func withoutIndex(pairs []db.Pair) []db.Pair {
	var out []db.Pair
	for _, p := range pairs {
		if !db.IsIndexKey(p.Key) {
			out = append(out, p)
		}
	}
	return out
}

func decode(cm *corev1.ConfigMap) (*State, error) {
	packed, ok := cm.BinaryData[keyState]
	if !ok {
		return nil, nil // claimed, never saved
	}
	pairs, err := unpack(packed)
	if err != nil {
		return nil, fmt.Errorf("the saved position state is corrupt: %w", err)
	}
	st := &State{Space: cm.Data[keySpace], Pairs: pairs, Holder: cm.Data[keyHolder], Clean: cm.Data[keyClean] == "true"}
	st.Saved, _ = time.Parse(time.RFC3339Nano, cm.Data[keySaved])
	return st, nil
}

// The state is zstd over length-prefixed pairs: a magic, then per pair the
// key's and the value's length (uvarint) and bytes.
var magic = []byte("FBTH1")

var (
	encoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	decoder, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(64<<20))
)

func encode(pairs []db.Pair) []byte {
	raw := append([]byte(nil), magic...)
	for _, p := range pairs {
		raw = binary.AppendUvarint(raw, uint64(len(p.Key)))
		raw = append(raw, p.Key...)
		raw = binary.AppendUvarint(raw, uint64(len(p.Val)))
		raw = append(raw, p.Val...)
	}
	return encoder.EncodeAll(raw, nil)
}

func unpack(packed []byte) ([]db.Pair, error) {
	raw, err := decoder.DecodeAll(packed, nil)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(raw, magic) {
		return nil, errors.New("unknown format")
	}
	r := bytes.NewReader(raw[len(magic):])
	var pairs []db.Pair
	for r.Len() > 0 {
		key, err := field(r)
		if err != nil {
			return nil, err
		}
		val, err := field(r)
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, db.Pair{Key: string(key), Val: val})
	}
	return pairs, nil
}

func field(r *bytes.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(r.Len()) {
		return nil, io.ErrUnexpectedEOF
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

// Snapshot reads what a successor needs from a key space: every position,
// and the index entries a settle re-scan of twice settle can still meet.
func Snapshot(sp *db.Space, now time.Time, settle time.Duration) ([]db.Pair, error) {
	var pairs []db.Pair
	add := func(key string, val []byte) error {
		pairs = append(pairs, db.Pair{Key: key, Val: val})
		return nil
	}
	if err := sp.ScanPositions(add); err != nil {
		return nil, err
	}
	if err := sp.ScanRecentIndex(now.Add(-2*settle), add); err != nil {
		return nil, err
	}
	return pairs, nil
}

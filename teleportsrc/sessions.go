package teleportsrc

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gravitational/trace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
)

const sessionPrefix = "session/"

// SessionPosition is the saved state of one recording's export.
type SessionPosition struct {
	SID      string `json:"-"`
	Next     int64  `json:"next"`   // index of the next event to read
	Upload   int64  `json:"upload"` // when its session.upload event happened (unix seconds)
	Attempts int    `json:"attempts,omitempty"`
	// Done: exported in full, or given up; kept a while so that a
	// re-delivered session.upload does not export the recording again.
	Done bool   `json:"done,omitempty"`
	key  string // built once: the queue compares keys per event
}

// Key implements db.Mark.
func (p SessionPosition) Key() string {
	if p.key != "" {
		return p.key
	}
	return sessionPrefix + p.SID
}

// Value implements db.Mark.
func (p SessionPosition) Value() []byte {
	b, _ := json.Marshal(p)
	return b
}

// LoadSessions reads the saved recording states of a key space.
func LoadSessions(sp *db.Space) (map[string]SessionPosition, error) {
	out := map[string]SessionPosition{}
	err := sp.Scan(sessionPrefix, func(key string, val []byte) error {
		var p SessionPosition
		if err := json.Unmarshal(val, &p); err != nil {
			return fmt.Errorf("stored state of %s is corrupt: %w", key, err)
		}
		p.SID = strings.TrimPrefix(key, sessionPrefix)
		p.key = key
		out[p.SID] = p
		return nil
	})
	return out, err
}

// SessionConfig tunes the export of session recordings.
type SessionConfig struct {
	Concurrency int
	Skip        []string // event types of recordings not to export (print)
	// GiveUpAfter: a recording still not uploaded this long after its
	// session.upload event is given up (sessionGiveUp if zero).
	GiveUpAfter time.Duration
	// RetryMin and RetryMax bound the delay before asking again for a
	// recording that is not there yet or that failed (the same jittered
	// Backoff as reconnects, counted per recording; sessionRetryMin and
	// sessionRetryMax if zero).
	RetryMin, RetryMax time.Duration
	// Keep is how long finished recordings are remembered (sessionKeep if
	// zero).
	Keep time.Duration
	// Save persists a newly found recording at once, so that a crash before
	// its session.upload event is committed cannot forget it.
	Save func(SessionPosition) error
	Logf func(format string, args ...any)
}

// What a SessionConfig left zero gets.
const (
	// Teleport uploads a recording when the session ends; one still
	// missing two days later is not coming.
	sessionGiveUp = 48 * time.Hour
	// Longer than sessionGiveUp: a session.upload event re-read by a
	// settle re-scan or a mode switch finds its recording still known.
	sessionKeep     = 72 * time.Hour
	sessionRetryMin = time.Minute
	sessionRetryMax = 15 * time.Minute
	// sessionPruneEvery is how often finished recordings older than Keep
	// are forgotten.
	sessionPruneEvery = time.Hour
)

// withDefaults fills what is unset or out of range: a zero GiveUpAfter gives
// up every recording not uploaded yet at once, a zero RetryMin retries in a
// busy loop, and no worker exports nothing.
func (c SessionConfig) withDefaults() SessionConfig {
	if c.Concurrency < 1 {
		c.Concurrency = 1
	}
	if c.GiveUpAfter <= 0 {
		c.GiveUpAfter = sessionGiveUp
	}
	if c.Keep <= 0 {
		c.Keep = sessionKeep
	}
	if c.RetryMin <= 0 {
		c.RetryMin = sessionRetryMin
	}
	if c.RetryMax <= 0 {
		c.RetryMax = sessionRetryMax
	}
	c.RetryMax = max(c.RetryMax, c.RetryMin)
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.Save == nil {
		c.Save = func(SessionPosition) error { return nil }
	}
	return c
}

// Sessions exports the recordings of sessions whose session.upload event
// the audit readers saw. A recording that fails is retried on its own;
// it never stops or blocks the audit export.
type Sessions struct {
	cfg    SessionConfig
	now    func() time.Time
	filter typeFilter

	mu         sync.Mutex
	states     map[string]*SessionPosition
	due        map[string]time.Time // when each open recording may be streamed
	busy       map[string]bool
	wake       chan struct{}
	structured bool // the cluster lacks StreamUnstructuredSessionEvents
	stats      SessionStats
}

// SessionStats counts what the session export did.
type SessionStats struct {
	Exported, GivenUp int64
	Active, Pending   int // streaming now; waiting to
}

// NewSessions resumes the recordings in saved.
func NewSessions(cfg SessionConfig, saved map[string]SessionPosition, now func() time.Time) *Sessions {
	cfg = cfg.withDefaults()
	m := &Sessions{cfg: cfg, now: now, filter: newTypeFilter(nil, cfg.Skip), states: map[string]*SessionPosition{},
		due: map[string]time.Time{}, busy: map[string]bool{}, wake: make(chan struct{}, 1)}
	for sid, p := range saved {
		p := p
		m.states[sid] = &p
		if !p.Done {
			m.due[sid] = time.Time{}
		}
	}
	return m
}

// Watch registers the recording of a session.upload event.
func (m *Sessions) Watch(ev *Event) {
	if ev.Type != "session.upload" {
		return
	}
	sid := StructString(ev.Body, "sid")
	if sid == "" {
		m.cfg.Logf("session.upload event %s has no sid; its recording cannot be exported", ev.ID)
		return
	}
	m.mu.Lock()
	if _, known := m.states[sid]; known {
		m.mu.Unlock()
		return
	}
	p := &SessionPosition{SID: sid, Upload: ev.Seconds, key: sessionPrefix + sid}
	m.states[sid] = p
	m.due[sid] = time.Time{}
	saved := *p // workers may update *p as soon as the lock is released
	m.mu.Unlock()
	if err := m.cfg.Save(saved); err != nil {
		m.cfg.Logf("could not save recording %s as pending (it is still exported now): %v", sid, err)
	}
	m.poke()
}

func (m *Sessions) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// StatsNow returns a copy of the counters.
func (m *Sessions) StatsNow() SessionStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.Active = len(m.busy)
	// A finished recording leaves due before busy: count, not subtract.
	for sid := range m.due {
		if !m.busy[sid] {
			s.Pending++
		}
	}
	return s
}

// Run streams due recordings, at most Concurrency at once, until ctx ends.
func (m *Sessions) Run(ctx context.Context, c Client, sink Sink) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	prune := time.NewTicker(sessionPruneEvery)
	defer prune.Stop()
	for {
		for _, sid := range m.claim() {
			wg.Add(1)
			go func(sid string) {
				defer wg.Done()
				m.export(ctx, c, sink, sid)
				m.poke()
			}(sid)
		}
		wait := m.nextDue()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-m.wake:
		case <-t.C:
		case <-prune.C:
			m.pruneDone(ctx, sink)
		}
		t.Stop()
	}
}

// claim takes the recordings that are due, up to the free workers, oldest
// upload first.
func (m *Sessions) claim() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var ready []string
	for sid, at := range m.due {
		if !m.busy[sid] && !at.After(now) {
			ready = append(ready, sid)
		}
	}
	sort.Slice(ready, func(i, j int) bool { return m.states[ready[i]].Upload < m.states[ready[j]].Upload })
	free := m.cfg.Concurrency - len(m.busy)
	if len(ready) > free {
		ready = ready[:max(free, 0)]
	}
	for _, sid := range ready {
		m.busy[sid] = true
	}
	return ready
}

// nextDue is how long to wait before claiming again: until the next
// recording is due, or, with every worker busy, until one finishes (which
// wakes the loop).
func (m *Sessions) nextDue() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := time.Hour
	if len(m.busy) >= m.cfg.Concurrency {
		return next
	}
	now := m.now()
	for sid, at := range m.due {
		if !m.busy[sid] {
			next = min(next, max(at.Sub(now), 0))
		}
	}
	return next
}

func (m *Sessions) export(ctx context.Context, c Client, sink Sink, sid string) {
	m.mu.Lock()
	p := *m.states[sid]
	structured := m.structured
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.busy, sid)
		m.mu.Unlock()
	}()

	fn := func(ev *Event) error {
		if ev.Index < p.Next {
			return nil // already handed over
		}
		at := p
		at.Next = ev.Index + 1
		var err error
		if m.filter.keep(ev.Type) {
			ev.Session = sid
			err = sink.Event(ctx, ev, at)
		} else {
			err = sink.Progress(ctx, at)
		}
		if err != nil {
			// Not handed over: the next attempt (after a reconnect, with
			// this same object) starts at this event again.
			return err
		}
		p = at
		m.mu.Lock()
		m.states[sid].Next = p.Next
		m.mu.Unlock()
		return nil
	}
	var err error
	if !structured {
		err = c.StreamSession(ctx, sid, p.Next, fn)
		if trace.IsNotImplemented(err) {
			m.mu.Lock()
			m.structured = true
			m.mu.Unlock()
			m.cfg.Logf("the cluster has no StreamUnstructuredSessionEvents (Teleport 13 or older): using StreamSessionEvents")
			structured = true
		}
	}
	if structured {
		err = c.StreamSessionStructured(ctx, sid, p.Next, fn)
	}
	if ctx.Err() != nil {
		return
	}
	m.finish(ctx, sink, &p, err)
}

// finish records the outcome of one attempt.
func (m *Sessions) finish(ctx context.Context, sink Sink, p *SessionPosition, err error) {
	m.mu.Lock()
	st := m.states[p.SID]
	var retryIn time.Duration
	switch {
	case err == nil:
		st.Done, st.Next = true, p.Next
		delete(m.due, p.SID)
		m.stats.Exported++
	case m.now().Sub(time.Unix(st.Upload, 0)) > m.cfg.GiveUpAfter:
		st.Done = true
		delete(m.due, p.SID)
		m.stats.GivenUp++
	default:
		st.Attempts++
		retryIn = Backoff{Min: m.cfg.RetryMin, Max: m.cfg.RetryMax}.Delay(st.Attempts)
		m.due[p.SID] = m.now().Add(retryIn)
	}
	out := *st
	m.mu.Unlock()
	retryIn = retryIn.Round(100 * time.Millisecond) // for the log lines

	switch {
	case err == nil:
		m.cfg.Logf("exported the recording of session %s", p.SID)
	case out.Done:
		m.cfg.Logf("giving up on the recording of session %s after %d attempts, %s after its upload: %v",
			p.SID, out.Attempts, m.cfg.GiveUpAfter, err)
	case trace.IsNotFound(err):
		m.cfg.Logf("the recording of session %s is not uploaded yet; asking again in %s (until %s after its upload)",
			p.SID, retryIn, m.cfg.GiveUpAfter)
	case trace.IsAccessDenied(err):
		m.cfg.Logf("Teleport denied reading the recording of session %s (retrying in %s, until %s after its upload): the role needs the rule `{resources: [session], verbs: [list, read]}`",
			p.SID, retryIn, m.cfg.GiveUpAfter)
	default:
		m.cfg.Logf("exporting the recording of session %s failed (retrying in %s; the audit export goes on): %v",
			p.SID, retryIn, err)
	}
	_ = sink.Progress(ctx, out)
}

// pruneDone forgets recordings finished longer ago than Keep.
func (m *Sessions) pruneDone(ctx context.Context, sink Sink) {
	m.mu.Lock()
	var old []string
	for sid, st := range m.states {
		if st.Done && m.now().Sub(time.Unix(st.Upload, 0)) > m.cfg.Keep {
			old = append(old, sid)
			delete(m.states, sid)
		}
	}
	m.mu.Unlock()
	for _, sid := range old {
		_ = sink.Progress(ctx, db.Delete(SessionPosition{SID: sid}.Key()))
	}
}

// StructString returns the string field key of a google.protobuf.Struct
// in wire format, or "".
func StructString(b []byte, key string) string {
	out := ""
	_ = walk(b, func(num protowire.Number, typ protowire.Type, entry []byte, _ uint64) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		var k string
		var val []byte
		_ = walk(entry, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
			switch {
			case num == 1 && typ == protowire.BytesType:
				k = string(v)
			case num == 2 && typ == protowire.BytesType:
				val = v
			}
			return nil
		})
		if k != key {
			return nil
		}
		_ = walk(val, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
			if num == 3 && typ == protowire.BytesType {
				out = string(v)
			}
			return nil
		})
		return nil
	})
	return out
}

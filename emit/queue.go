package emit

import (
	"context"
	"sync"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
)

// Queue is the bounded hand-off between the goroutines that fetch events and
// Fluent Bit's collect callback. Put blocks while the queue is full; Take
// never blocks.
type Queue struct {
	mu       sync.Mutex
	items    []Item
	head     int
	records  int
	bytes    int
	maxItems int
	maxBytes int
	// room is closed (and replaced) whenever Take frees space, waking every
	// waiting producer at once.
	room chan struct{}
	// waits counts the times a Put found the queue full and began to wait
	// (tests watch it to know producers are blocked).
	waits int
	// run indexes, by key, the position-only items queued after the last
	// item that carries a record or an index entry. A batch takes such a
	// run whole, so a newer position may replace an older one of its key
	// in place: positions stay at one per key, however long Fluent Bit
	// holds the collector back.
	run map[string]int
}

// Item is what the readers queue: a record and the position after it, or a
// position alone.
type Item struct {
	Rec     []byte // nil for a position-only item
	Mark    db.Mark
	Seen    *db.Seen // index entry to write with the batch, if any
	Time    int64    // the event's time (unix seconds), 0 if not an audit event
	Session bool     // the record is an event of a session recording
}

// NewQueue holds at most maxRecords records or maxBytes bytes (a single
// record larger than maxBytes still passes when the queue is empty).
func NewQueue(maxRecords, maxBytes int) *Queue {
	return &Queue{maxItems: maxRecords, maxBytes: maxBytes, room: make(chan struct{})}
}

// Put appends an item and waits for room while the queue is full (a
// position alone never waits). It returns ctx.Err() if ctx ends first.
func (q *Queue) Put(ctx context.Context, it Item) error {
	for {
		q.mu.Lock()
		positionOnly := it.Rec == nil && it.Seen == nil && it.Mark != nil
		if positionOnly {
			if i, ok := q.run[it.Mark.Key()]; ok {
				q.items[i].Mark = it.Mark
				q.mu.Unlock()
				return nil
			}
		}
		if it.Rec == nil || q.records == 0 || (q.records < q.maxItems && q.bytes < q.maxBytes) {
			q.items = append(q.items, it)
			switch {
			case positionOnly:
				if q.run == nil {
					q.run = map[string]int{}
				}
				q.run[it.Mark.Key()] = len(q.items) - 1
			case len(q.run) > 0:
				clear(q.run)
			}
			if it.Rec != nil {
				q.records++
				q.bytes += len(it.Rec)
			}
			q.mu.Unlock()
			return nil
		}
		room := q.room
		q.waits++
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-room:
		}
	}
}

// Batch is what one collect callback hands to Fluent Bit.
type Batch struct {
	Records [][]byte
	Size    int
	// Marks holds the last position of each key in the batch: committing
	// them after Fluent Bit took the batch moves every stream past it.
	Marks []db.Mark
	// Seen holds the index entries of the batch's events.
	Seen []db.Seen
	// Newest is the time of the newest audit event in the batch (unix seconds).
	Newest int64
	// SessionRecords counts the records of session recordings among Records.
	SessionRecords int
}

// CopyTo writes the concatenated records into dst, which holds b.Size bytes.
func (b *Batch) CopyTo(dst []byte) {
	n := 0
	for _, r := range b.Records {
		n += copy(dst[n:], r)
	}
}

// Take removes up to maxRecords records and about maxBytes bytes (at least
// one record if any is queued), with the positions queued among them.
func (q *Queue) Take(maxRecords, maxBytes int) *Batch {
	b := &Batch{}
	q.TakeInto(b, maxRecords, maxBytes)
	return b
}

// TakeInto is Take adding to b, whose records count against the limits.
func (q *Queue) TakeInto(b *Batch, maxRecords, maxBytes int) {
	taken, size := len(b.Records), b.Size
	q.mu.Lock()
	i := q.head
	for ; i < len(q.items); i++ {
		it := q.items[i]
		if it.Rec != nil {
			if len(b.Records) == maxRecords || (len(b.Records) > 0 && b.Size+len(it.Rec) > maxBytes) {
				break
			}
			b.Records = append(b.Records, it.Rec)
			b.Size += len(it.Rec)
			b.Newest = max(b.Newest, it.Time)
			if it.Session {
				b.SessionRecords++
			}
		}
		b.Marks = setMark(b.Marks, it.Mark)
		if it.Seen != nil {
			b.Seen = append(b.Seen, *it.Seen)
		}
		q.items[i] = Item{}
	}
	if i > q.head && len(q.run) > 0 {
		// The items move; the run, if any was left, starts over (a batch
		// took it whole or not at all, so this only forgoes coalescing).
		clear(q.run)
	}
	q.head = i
	q.records -= len(b.Records) - taken
	q.bytes -= b.Size - size
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		q.items, q.head = q.items[:n], 0
	}
	if len(b.Records) > taken {
		close(q.room)
		q.room = make(chan struct{})
	}
	q.mu.Unlock()
}

// Len returns the queued records and their bytes.
func (q *Queue) Len() (records, bytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.records, q.bytes
}

func setMark(marks []db.Mark, m db.Mark) []db.Mark {
	if m == nil {
		return marks
	}
	for i, old := range marks {
		if old.Key() == m.Key() {
			marks[i] = m
			return marks
		}
	}
	return append(marks, m)
}

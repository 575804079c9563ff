package input

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/conf"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
)

const (
	modeKey       = "mode"
	startTimeKey  = "start_time"
	startAfterKey = "start_after"
	// switchedKey holds where the search stopped when the bulk export took
	// over: the bulk export starts there at every start, not at start_time.
	switchedKey = "switched_from_search"
)

// state is what a key space holds for one input.
type state struct {
	mode      string // the export mode last used, "" before any
	startTime string // RFC 3339, written at the first start
	// startAfter is where start_after_uid put the start: its second and
	// the ids of that second sent before, one per line after the time.
	startAfter []byte
	search     *teleportsrc.SearchPosition
	switched   *teleportsrc.SearchPosition // switchedKey
	bulk       teleportsrc.BulkState
	sessions   map[string]teleportsrc.SessionPosition
}

func loadState(sp *db.Space) (state, error) {
	var st state
	mode, _, err := sp.Get(modeKey)
	if err != nil {
		return st, err
	}
	st.mode = string(mode)
	start, _, err := sp.Get(startTimeKey)
	if err != nil {
		return st, err
	}
	st.startTime = string(start)
	if st.startAfter, _, err = sp.Get(startAfterKey); err != nil {
		return st, err
	}
	if st.search, err = loadSearchPosition(sp, teleportsrc.SearchKey); err != nil {
		return st, err
	}
	if st.search != nil && st.mode == "" {
		st.mode = conf.ModeSearch // saved before modes existed
	}
	if st.switched, err = loadSearchPosition(sp, switchedKey); err != nil {
		return st, err
	}
	if st.bulk, err = teleportsrc.LoadBulkState(sp); err != nil {
		return st, err
	}
	st.sessions, err = teleportsrc.LoadSessions(sp)
	return st, err
}

// loadSearchPosition reads a search position saved under key, nil if none.
func loadSearchPosition(sp *db.Space, key string) (*teleportsrc.SearchPosition, error) {
	raw, ok, err := sp.Get(key)
	if err != nil || !ok {
		return nil, err
	}
	pos, err := teleportsrc.ParseSearchPosition(raw)
	if err != nil {
		return nil, err
	}
	return &pos, nil
}

// startTime is where the export began: saved at the first start, so that
// a restart before the first batch does not move it to a later "now".
func (x *Instance) startTime(sp *db.Space, st state) time.Time {
	if st.startTime != "" {
		saved, err := time.Parse(time.RFC3339, st.startTime)
		if err == nil {
			if !x.cfg.StartTime.IsZero() && !x.cfg.StartTime.Equal(saved) {
				x.log.Warnf("start_time %s is ignored: db %s already holds a position for %s (started at %s); to export from start_time instead, stop Fluent Bit and delete the db directory, or give this input another alias",
					x.cfg.StartTime.Format(time.RFC3339), x.cfg.DB, sp.Name(), st.startTime)
			}
			x.log.Infof("resuming from the position saved in db %s for %s", x.cfg.DB, sp.Name())
			return saved
		}
	}
	start := x.cfg.StartTime
	if start.IsZero() {
		start = x.now().UTC().Truncate(time.Second)
	}
	if err := sp.Set(startTimeKey, []byte(start.Format(time.RFC3339))); err != nil {
		x.log.Errorf("writing db %s: %v", x.cfg.DB, err)
	}
	x.log.Infof("no saved position for %s in db %s: starting at %s", sp.Name(), x.cfg.DB, start.Format(time.RFC3339))
	return start
}

// startAfter applies start_after_uid: at the first start it finds the
// event and saves its second and the ids sent before it in that second, so
// that every later start, in either mode, begins at the same place.
func (x *Instance) startAfter(ctx context.Context, clt teleportsrc.Client, sp *db.Space, st state, start time.Time) (time.Time, []string, error) {
	if st.startAfter == nil {
		if x.cfg.StartAfterUID == "" {
			return start, nil, nil
		}
		if st.mode != "" {
			x.log.Warnf("start_after_uid %s is ignored: db %s already holds a position for %s", x.cfg.StartAfterUID, x.cfg.DB, sp.Name())
			return start, nil, nil
		}
		second, tail, err := teleportsrc.FindStartAfter(ctx, clt, start, x.now(), x.cfg.StartAfterUID, x.cfg.PageSize)
		if err != nil {
			return start, nil, fmt.Errorf("start_after_uid: %w", err)
		}
		st.startAfter = []byte(strings.Join(append([]string{second.Format(time.RFC3339)}, tail...), "\n"))
		if err := sp.Set(startAfterKey, st.startAfter); err != nil {
			return start, nil, fmt.Errorf("writing db %s: %w", x.cfg.DB, err)
		}
		x.log.Infof("start_after_uid: starting right after event %s of %s (%d events of that second came before it)",
			x.cfg.StartAfterUID, second.Format(time.RFC3339), len(tail)-1)
	}
	lines := strings.Split(string(st.startAfter), "\n")
	second, err := time.Parse(time.RFC3339, lines[0])
	if err != nil {
		return start, nil, fmt.Errorf("reading db %s: bad %s %q", x.cfg.DB, startAfterKey, lines[0])
	}
	return second, lines[1:], nil
}

// searchStart is the search reader's position, switching from the bulk
// export if that ran last.
func (x *Instance) searchStart(sp *db.Space, st state, start time.Time, startTail []string) (teleportsrc.SearchPosition, error) {
	var pos teleportsrc.SearchPosition
	switch {
	case st.mode == conf.ModeBulk:
		// Everything before the bulk export's oldest open date is out; within
		// the open dates the index knows what it handed over.
		from := start
		if d := st.bulk.OldestOpenDate(); d != "" {
			t, _ := time.Parse(time.DateOnly, d)
			from = t
		} else if d := st.bulk.LastDoneDate(); d != "" {
			t, _ := time.Parse(time.DateOnly, d)
			from = t.Add(24 * time.Hour)
		}
		if from.Before(start) {
			from = start
		}
		pos = teleportsrc.SearchPosition{From: from.Unix(), CheckUntil: x.now().Unix()}
		x.log.Infof("switching from bulk export to search at %s; events the bulk export already handed over are recognised and not sent again", from.Format(time.RFC3339))
	case st.search != nil:
		return *st.search, nil
	default:
		pos = teleportsrc.SearchPosition{From: start.Unix(), Tail: startTail}
	}
	// A later switch back to bulk saves its own switch point.
	if err := sp.Commit([]db.Mark{pos, db.Delete(switchedKey)}, nil); err != nil {
		return pos, fmt.Errorf("writing db %s: %w", x.cfg.DB, err)
	}
	return pos, nil
}

// bulkStart returns the bulk state to resume and, if the bulk export took
// over from the search, where the search left off (nil if it never ran); a
// switch clears stale bulk positions and saves the switch point, so that
// later starts begin there too.
func (x *Instance) bulkStart(sp *db.Space, st state) (*teleportsrc.SearchPosition, teleportsrc.BulkState, error) {
	if st.mode != conf.ModeSearch || st.search == nil {
		return st.switched, st.bulk, nil
	}
	if err := sp.Commit(append(st.bulk.Clear(), switchPoint{*st.search}), nil); err != nil {
		return nil, st.bulk, fmt.Errorf("writing db %s: %w", x.cfg.DB, err)
	}
	x.log.Infof("switching from search to bulk export at %s: the export starts on that UTC date and leaves out what the search already handed over",
		st.search.FromTime().Format(time.RFC3339))
	return st.search, teleportsrc.BulkState{}, nil
}

// switchPoint is the search position saved under switchedKey.
type switchPoint struct{ teleportsrc.SearchPosition }

func (switchPoint) Key() string { return switchedKey }

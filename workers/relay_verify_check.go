package workers

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/chartstream/chartstream/eventstore"
)

// The comparison behind VerifyRelay, apart from the reading that feeds it:
// the stream's messages are indexed by event id, then the store's events
// are looked up in cursor order.

// streamEntry is all the check keeps of a stream message.
type streamEntry struct {
	id  uuid.UUID
	seq uint64
}

func compareEntry(e streamEntry, id uuid.UUID) int { return bytes.Compare(e.id[:], id[:]) }

// relayCheck compares the stream's messages, indexed by event id, with the
// store's events as they are read in cursor order.
type relayCheck struct {
	report       RelayReport
	head         eventstore.Cursor
	retainedFrom eventstore.Cursor
	entries      []streamEntry // by event id, then sequence, once indexed
	matched      []bool        // entries that name a store event
	lastSeq      uint64        // sequence of the last store event found
	progress     eventstore.ProgressFn
	done, total  int64
}

// addMessage indexes one message unless it is for an event newer than the
// head, and returns its cursor if it has one.
func (c *relayCheck) addMessage(seq uint64, h nats.Header) (eventstore.Cursor, bool) {
	cur, ok := cursorOf(h)
	if ok && cur.After(c.head) {
		c.report.NewerMessages++
		return cur, ok
	}
	c.report.StreamMessages++
	id, err := uuid.Parse(h.Get(nats.MsgIdHdr))
	if err != nil {
		c.report.Extra.Count++
		return cur, ok
	}
	c.entries = append(c.entries, streamEntry{id: id, seq: seq})
	return cur, ok
}

// index sorts the entries by event id, each id's copies in stream order.
func (c *relayCheck) index() {
	slices.SortFunc(c.entries, func(a, b streamEntry) int {
		if n := compareEntry(a, b.id); n != 0 {
			return n
		}
		return cmp.Compare(a.seq, b.seq)
	})
	c.matched = make([]bool, len(c.entries))
	c.total = c.done + int64(len(c.entries))
}

// checkEvent looks up one store event, in cursor order, in the stream.
func (c *relayCheck) checkEvent(id uuid.UUID, cur eventstore.Cursor) {
	c.report.StoreEvents++
	i, found := slices.BinarySearchFunc(c.entries, id, compareEntry)
	if !found {
		if c.retainedFrom.After(cur) {
			c.report.Expired.add(id)
		} else {
			c.report.Missing.add(id)
		}
		return
	}
	copies := 0
	for j := i; j < len(c.entries) && c.entries[j].id == id; j++ {
		c.matched[j] = true
		copies++
	}
	if copies > 1 {
		c.report.Duplicated.add(id)
	}
	// The first copy is where the relay put the event.
	if seq := c.entries[i].seq; seq < c.lastSeq {
		c.report.OutOfOrder.add(id)
	}
	c.lastSeq = c.entries[i].seq
}

// extras counts the messages that named no store event, each id once
// among the examples.
func (c *relayCheck) extras() {
	for i, e := range c.entries {
		if c.matched[i] {
			continue
		}
		if i > 0 && c.entries[i-1].id == e.id {
			c.report.Extra.Count++
			continue
		}
		c.report.Extra.add(e.id)
	}
}

// count counts one more message or event read, and tells the progress
// function every page.
func (c *relayCheck) count() {
	c.done++
	if c.done%relayVerifyPage == 0 {
		c.tellProgress()
	}
}

// tellProgress tells the progress function how far the check is.
func (c *relayCheck) tellProgress() {
	c.total = max(c.total, c.done)
	if c.progress != nil {
		c.progress(c.done, c.total)
	}
}

package main

import (
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/eventstore"
)

// maxExamples bounds the examples a report lists of each kind of problem
// (lost, duplicated, out of order).
const maxExamples = 5

// lostTally counts acknowledged commands missing from where they must be.
type lostTally struct {
	// Commands is acknowledged commands absent from at least one place.
	Commands int `json:"commands"`
	// Store, Stream and ReadModels count the commands absent from each.
	Store      int `json:"store"`
	Stream     int `json:"stream"`
	ReadModels int `json:"read_models"`
}

// duplicateTally counts facts recorded more than once.
type duplicateTally struct {
	// Store is acknowledged commands whose fact is recorded by more than
	// one event, or that caused more than one such event (same
	// correlation id): a retry that ran twice.
	Store int `json:"store"`
	// Stream is event ids that appear more than once in the tenant's
	// stream.
	Stream int `json:"stream"`
	// ReadModels is acknowledged facts with more than one read model row.
	ReadModels int `json:"read_models"`
}

// Total is every duplicate counted.
func (d duplicateTally) Total() int { return d.Store + d.Stream + d.ReadModels }

// kindTally is, for one kind of command, how many acknowledged commands
// were found where.
type kindTally struct {
	Acknowledged int `json:"acknowledged"`
	InStore      int `json:"in_store"`
	Published    int `json:"published"`
	Projected    int `json:"projected"`
}

// verdict classifies the acknowledged commands against what was observed.
type verdict struct {
	Kinds      map[commandKind]kindTally
	Lost       lostTally
	Duplicated duplicateTally
	// OutOfOrder is stream messages that come after a message whose event
	// follows theirs in the store's order (txid, position).
	OutOfOrder int
	// Examples names some of each kind of problem, by ids only.
	Examples []string
	// Observations compares the tenant's observation events with its
	// observation rows, acknowledged or not: the measure.
	Observations observationCount
}

// observationCount is the comparison: the tenant's
// patient.observation_recorded events in the event store and its rows in
// the observations read model. Every command that committed counts, also
// one whose client never learned it had (a process killed before it
// answered), so the two must be equal whatever the ledger says.
type observationCount struct {
	Store     int `json:"store"`
	ReadModel int `json:"read_model"`
}

// gap is how far apart the two counts are.
func (o observationCount) gap() int { return max(o.Store-o.ReadModel, o.ReadModel-o.Store) }

// classify checks every acknowledged command against the store, the stream
// and the read models, and the stream's order against the store's.
func classify(acked []ackedCommand, obs observed) verdict {
	v := verdict{Kinds: map[commandKind]kindTally{}}
	listed := map[string]int{}
	example := func(problem, format string, args ...any) {
		if listed[problem] < maxExamples {
			listed[problem]++
			v.Examples = append(v.Examples, problem+": "+fmt.Sprintf(format, args...))
		}
	}
	type causedBy struct {
		key  string
		kind commandKind
	}
	storeFacts, caused := map[fact]int{}, map[causedBy]int{}
	storeCursor := make(map[uuid.UUID]eventstore.Cursor, len(obs.Store))
	for _, e := range obs.Store {
		storeCursor[e.ID] = e.Cursor
		if e.Type == patient.TypeObservationRecorded {
			v.Observations.Store++
		}
		if e.Fact != (fact{}) {
			storeFacts[e.Fact]++
			caused[causedBy{e.Correlation, e.Fact.Kind}]++
		}
	}

	streamFacts, delivered := map[fact]bool{}, map[uuid.UUID]int{}
	for f, n := range obs.Rows {
		if f.Kind == kindObservation {
			v.Observations.ReadModel += n
		}
	}

	var last eventstore.Cursor
	for _, e := range obs.Stream {
		delivered[e.ID]++
		if delivered[e.ID] > 1 {
			if delivered[e.ID] == 2 {
				v.Duplicated.Stream++
				example("duplicated", "event %s: more than once in the stream", e.ID)
			}
			continue
		}
		if e.Fact != (fact{}) {
			streamFacts[e.Fact] = true
		}
		cursor, ok := storeCursor[e.ID]
		if !ok {
			cursor = e.Cursor
		}
		if cursor.After(last) {
			last = cursor
		} else {
			v.OutOfOrder++
			example("out of order", "event %s: in the stream after an event that follows it in the store", e.ID)
		}
	}

	for _, c := range acked {
		f := fact{c.Kind, c.ID}
		t := v.Kinds[c.Kind]
		t.Acknowledged++
		var absent []string
		if storeFacts[f] > 0 {
			t.InStore++
		} else {
			v.Lost.Store++
			absent = append(absent, "event store")
		}
		switch {
		case !obs.StreamRead:
		case streamFacts[f]:
			t.Published++
		default:
			v.Lost.Stream++
			absent = append(absent, "stream")
		}
		if obs.Rows[f] > 0 {
			t.Projected++
		} else {
			v.Lost.ReadModels++
			absent = append(absent, "read model")
		}
		if len(absent) > 0 {
			v.Lost.Commands++
			example("lost", "%s %s: absent from %s", c.Kind, c.ID, strings.Join(absent, ", "))
		}
		switch n, m := storeFacts[f], caused[causedBy{c.Key, c.Kind}]; {
		case n > 1:
			v.Duplicated.Store++
			example("duplicated", "%s %s: recorded by %d events in the event store", c.Kind, c.ID, n)
		case m > 1:
			v.Duplicated.Store++
			example("duplicated", "%s %s: its command (one Idempotency-Key) recorded %d of them in the event store", c.Kind, c.ID, m)
		}
		if obs.Rows[f] > 1 {
			v.Duplicated.ReadModels++
			example("duplicated", "%s %s: %d read model rows", c.Kind, c.ID, obs.Rows[f])
		}
		v.Kinds[c.Kind] = t
	}
	return v
}

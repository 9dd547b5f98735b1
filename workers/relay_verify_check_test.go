package workers

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/chartstream/chartstream/eventstore"
)

// A million events fit: what the check holds per stream message stays
// under 40 bytes, 40 MB for a million, far inside the 200 MB budget.
// Measured on a quarter million (a million takes seconds under -race on
// a shared machine); not parallel, since it reads the process's heap.
func TestRelayVerifyMillionEventsFitInMemory(t *testing.T) {
	const n = 250_000
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]uuid.UUID, n)
	for i := range ids {
		for j := range ids[i] {
			ids[i][j] = byte(rng.UintN(256))
		}
	}
	cursor := func(i int) eventstore.Cursor { return eventstore.Cursor{TxID: int64(i + 1), Position: int64(i + 1)} }
	before := heapAfterGC()

	c := &relayCheck{head: cursor(n - 1)}
	h := nats.Header{}
	for i, id := range ids {
		h.Set(nats.MsgIdHdr, id.String())
		h.Set(HeaderTxID, strconv.Itoa(i+1))
		h.Set(HeaderPosition, strconv.Itoa(i+1))
		c.addMessage(uint64(i+1), h)
	}
	c.index()
	held := heapAfterGC() - before
	for i, id := range ids {
		c.checkEvent(id, cursor(i))
	}
	c.extras()
	runtime.KeepAlive(c)

	if perMessage := float64(held) / n; perMessage > 40 {
		t.Errorf("the index holds %.1f bytes per message, want at most 40", perMessage)
	}
	r := c.report
	if !r.OK() || r.StoreEvents != n || r.StreamMessages != n || r.Expired.Count != 0 || r.NewerMessages != 0 {
		t.Errorf("report %+v, want %d events and messages, all OK", r, n)
	}
}

func heapAfterGC() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

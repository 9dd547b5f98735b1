package audit

import (
	"testing"

	"github.com/chartstream/chartstream/eventstore"
)

// A tenant's checkpoints, thinned as verification reads them, stay
// bounded and in order, and always end with the newest: the difference is
// placed exactly at the recent end and roughly further back.
func TestThinKeepsTheNewestInOrder(t *testing.T) {
	t.Parallel()
	var kept []eventstore.Checkpoint
	for seq := int64(1); seq <= 3*maxMarks+7; seq++ {
		kept = thin(append(kept, eventstore.Checkpoint{Seq: seq}))
		if kept[len(kept)-1].Seq != seq || len(kept) > maxMarks {
			t.Fatalf("after checkpoint %d: %d kept, the last %d", seq, len(kept), kept[len(kept)-1].Seq)
		}
	}
	for i := 1; i < len(kept); i++ {
		if kept[i].Seq <= kept[i-1].Seq {
			t.Fatalf("out of order at %d: %d after %d", i, kept[i].Seq, kept[i-1].Seq)
		}
	}
	if len(kept) < maxMarks/2 {
		t.Errorf("%d kept, want at least %d", len(kept), maxMarks/2)
	}
}

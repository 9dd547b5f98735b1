package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream/audit"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/testkit"
)

// forgery is an attacker's edit of an export file: a new checkpoint in
// the header (or none), and one event's payload changed, its stream
// re-chained from it with the public hash formula so that every stream
// chain in the file holds.
type forgery struct {
	checkpoint json.RawMessage // "null" strips it; nil keeps the file's
	stream     uuid.UUID
	version    int64
	from, to   string // replaced once in that event's payload
}

// forge applies g to the export raw of f's tenant.
func (f *auditFixture) forge(raw []byte, g forgery) []byte {
	f.t.Helper()
	lines := bytes.SplitAfter(raw, []byte("\n"))
	if g.checkpoint != nil {
		var head map[string]json.RawMessage
		if err := json.Unmarshal(lines[0], &head); err != nil {
			f.t.Fatal(err)
		}
		head["checkpoint"] = g.checkpoint
		b, _ := json.Marshal(head)
		lines[0] = append(b, '\n')
	}
	var prev eventstore.Hash
	edited := false
	for i, line := range lines[1:] {
		e, err := audit.ReadEventLine(line, f.tenant)
		if err != nil || e.StreamID != g.stream || e.Version < g.version {
			continue
		}
		if e.Version == g.version {
			line = bytes.Replace(line, []byte(g.from), []byte(g.to), 1)
			if e, err = audit.ReadEventLine(line, f.tenant); err != nil || bytes.Equal(line, lines[i+1]) {
				f.t.Fatalf("found no %q to change in %s", g.from, line)
			}
			prev, edited = e.PrevHash, true
		}
		sum := e.ComputeHash(sha256.New(), prev)
		if e.Version > g.version {
			line = bytes.Replace(line, []byte(`"prev_hash":"`+hex.EncodeToString(e.PrevHash)), []byte(`"prev_hash":"`+hex.EncodeToString(prev)), 1)
		}
		lines[i+1] = bytes.Replace(line, []byte(`"hash":"`+hex.EncodeToString(e.Hash)), []byte(`"hash":"`+hex.EncodeToString(sum)), 1)
		prev = sum
	}
	if !edited {
		f.t.Fatalf("the export has no version %d of stream %s", g.version, g.stream)
	}
	return bytes.Join(lines, nil)
}

// verifyFile writes raw to a file and runs chartstream verify --file on it.
func (f *auditFixture) verifyFile(raw []byte, extra ...string) (string, error) {
	f.t.Helper()
	file := f.t.TempDir() + "/forged.ndjson"
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		f.t.Fatal(err)
	}
	return execute(testkit.Context(f.t), append([]string{"verify", "--file", file, "--public-key", f.pub}, extra...)...)
}

// An export rewritten by whoever holds the file, every stream re-chained
// with the public hash formula, never verifies: a rewritten covered event
// contradicts the checkpoint; a stripped checkpoint vouches for nothing;
// an older valid checkpoint leaves the events after it covered by nothing,
// and an auditor who holds the newer checkpoint can demand it.
func TestVerifyFileCatchesAForgedExport(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	f.addPatient(3)
	f.addPatient(2)
	older := f.anchor()
	f.addPatient(4)
	f.anchor()
	file, raw := f.exportRaw()
	if out, err := f.verifyFile(raw); exitCode(err) != 0 {
		t.Fatalf("the untouched export: exit %d (%v): %s", exitCode(err), err, out)
	}
	olderJSON, _ := json.Marshal(older)
	first, third := f.patients[0].ID, f.patients[2].ID
	cases := []struct {
		name  string
		g     forgery
		extra []string
		exit  int
		want  []string
	}{
		{"rewrite a covered event and re-chain", forgery{stream: first, version: 2, from: `"value": 61`, to: `"value": 99`},
			nil, 1, []string{"FINDING altered_events: the 9 events anchored by checkpoint 2"}},
		{"strip the checkpoint", forgery{checkpoint: json.RawMessage("null"), stream: first, version: 2, from: `"value": 61`, to: `"value": 99`},
			nil, 1, []string{"FINDING checkpoint_absent: the export carries no checkpoint: nothing vouches for its 9 events"}},
		{"carry the older checkpoint, rewrite events after it", forgery{checkpoint: olderJSON, stream: third, version: 2, from: `"value": 61`, to: `"value": 99`},
			nil, 3, []string{"FINDING unanchored_events: 4 events, from line 7 (patient " + third.String() + " version 1", "come after the export's checkpoint 1",
				"PARTIALLY VERIFIED"}},
		{"and the auditor demands the newer checkpoint", forgery{checkpoint: olderJSON, stream: third, version: 2, from: `"value": 61`, to: `"value": 99`},
			[]string{"--checkpoint-seq", "2"}, 1, []string{"FINDING checkpoint_stale: the export carries checkpoint 1, older than checkpoint 2 demanded"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := f.verifyFile(f.forge(raw, tc.g), tc.extra...)
			if exitCode(err) != tc.exit {
				t.Fatalf("exit %d (%v), want %d: %s", exitCode(err), err, tc.exit, out)
			}
			if strings.Contains(out, "FINDING broken_chain") {
				t.Errorf("the forgery left a stream chain broken, so it proves nothing:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out+"\n"+err.Error(), w) {
					t.Errorf("the report does not say %q:\n%s\n%v", w, out, err)
				}
			}
		})
	}
	if _, err := execute(context.Background(), "verify", "--file", file, "--public-key", f.pub, "--checkpoint-seq", "-1"); exitCode(err) != 2 {
		t.Errorf("--checkpoint-seq -1: %v, want exit 2", err)
	}
}

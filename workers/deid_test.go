package workers_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/internal/deid"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
)

// fixture is a patient with an identifier of every Safe Harbor kind, and
// the ids of everything recorded about them.
type fixture struct {
	id, encounter, order, observation, allergy, condition uuid.UUID
	family, given, mrn, birth, ssn, phone, fax, email     string
	street, city, zip, plan, account, licence, vehicle    string
	device, url, ip, note, prescriber, deceased           string
	// location is a name and an address typed where a ward belongs.
	location string
}

func newFixture(n int) fixture {
	s := strconv.Itoa(n)
	return fixture{
		id: uuid.New(), encounter: uuid.New(), order: uuid.New(), observation: uuid.New(), allergy: uuid.New(), condition: uuid.New(),
		family: "Quarterbridge" + s, given: "Philippa" + s, mrn: "MRN-88412" + s, birth: "1958-03-1" + s,
		ssn: "123-45-678" + s, phone: "+1 617 555 013" + s, fax: "+1 617 555 019" + s, email: "philippa" + s + "@mail.example",
		street: s + "7 Wrenfield Lane", city: "Marblehead" + s, zip: "0194" + s, plan: "HPB-3344-" + s, account: "ACCT-99120" + s,
		licence: "DL-S5301" + s, vehicle: "1HGCM82633A00435" + s, device: "PM-SERIAL-77" + s, url: "https://philippa" + s + ".example/home",
		ip: "203.0.113.4" + s, note: "lives alone with her cat Biscuit" + s, prescriber: "Dr Hortensia Vell" + s, deceased: "2026-02-1" + s + "T04:30:00Z",
		location: "bedside of Ambrose Tillingham" + s + ", 4 Kestrel Row",
	}
}

// identifiers are the fixture's values that no message may carry. Birth
// and death years may survive (Safe Harbor keeps years), dates may not.
func (f fixture) identifiers() []string {
	return append([]string{f.family, f.given, f.mrn, f.birth, f.ssn, f.phone, f.fax, f.email, f.street, f.city, f.zip, f.plan,
		f.account, f.licence, f.vehicle, f.device, f.url, f.ip, f.note, f.prescriber, f.deceased, f.deceased[:10],
		f.location, "Tillingham", "Kestrel", transferWard, "2026-02-03", "Biscuit", "whitfield", "corr-"},
		ids(f.id, f.encounter, f.order, f.observation, f.allergy, f.condition)...)
}

// record appends an event of every clinical type about f, each carrying
// identifiers in its known fields and in fields no rule knows.
func (e *deidEnv) record(tenant chartstream.TenantID, f fixture) {
	e.t.Helper()
	pat := chartstream.StreamRef{Type: patient.StreamType, ID: f.id}
	enc := chartstream.StreamRef{Type: encounter.StreamType, ID: f.encounter}
	ord := chartstream.StreamRef{Type: medicationorder.StreamType, ID: f.order}
	extra := map[string]any{"ssn": f.ssn, "notes": f.note, "fax": f.fax, "health_plan": f.plan, "account": f.account,
		"licence": f.licence, "vehicle": f.vehicle, "device": f.device, "url": f.url, "ip": f.ip, "photo": f.url + "/face.jpg"}
	with := func(m map[string]any) map[string]any {
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	demographics := func() map[string]any {
		return with(map[string]any{"mrn": f.mrn, "name": map[string]any{"family": f.family, "given": []string{f.given}},
			"birth_date": f.birth, "sex": "female", "contact": map[string]any{"phone": f.phone, "email": f.email},
			"address": map[string]any{"line": f.street, "city": f.city, "state": "MA", "postal_code": f.zip}})
	}
	e.appendAs(tenant, pat, patient.TypeRegistered, demographics())
	e.appendAs(tenant, pat, patient.TypeDemographicsUpdated, demographics())
	e.appendAs(tenant, pat, patient.TypeAllergyRecorded, with(map[string]any{"allergy_id": f.allergy, "criticality": "high",
		"substance": map[string]any{"code": "7980", "system": patient.RxNorm, "display": "penicillin per " + f.family}, "reaction": f.note}))
	e.appendAs(tenant, pat, patient.TypeAllergyRefuted, with(map[string]any{"allergy_id": f.allergy}))
	e.appendAs(tenant, pat, patient.TypeConditionDiagnosed, with(map[string]any{"condition_id": f.condition, "code": "E11.9",
		"system": "http://hl7.org/fhir/sid/icd-10-cm", "display": f.note, "onset": "2026-02-03"}))
	e.appendAs(tenant, pat, patient.TypeConditionResolved, with(map[string]any{"condition_id": f.condition}))
	e.appendAs(tenant, enc, encounter.TypeStarted, with(map[string]any{"patient_id": f.id, "class": "inpatient", "location": f.location,
		"reason": f.given + " " + f.family + " fell at " + f.street}))
	e.appendAs(tenant, pat, patient.TypeObservationRecorded, with(map[string]any{"observation_id": f.observation, "code": "8867-4",
		"system": patient.LOINC, "value": 72, "unit": "/min", "effective_at": "2026-02-03T09:15:00Z", "encounter_id": f.encounter}))
	e.appendAs(tenant, enc, encounter.TypePatientTransferred, with(map[string]any{"location": transferWard}))
	e.appendAs(tenant, ord, medicationorder.TypePrescribed, with(map[string]any{"patient_id": f.id,
		"medication": map[string]any{"code": "197361", "system": patient.RxNorm, "display": f.note}, "dose": "5 mg " + f.given,
		"route": "oral", "frequency": "daily", "prescriber": f.prescriber, "override": map[string]any{"reason": f.note}}))
	e.appendAs(tenant, ord, medicationorder.TypeDiscontinued, with(map[string]any{"patient_id": f.id, "reason": f.note}))
	e.appendAs(tenant, enc, encounter.TypeDischarged, with(map[string]any{}))
	e.appendAs(tenant, pat, patient.TypeDeceased, with(map[string]any{"deceased_at": f.deceased}))
	e.appendAs(tenant, pat, patient.TypeErased, with(map[string]any{"erased_at": "2026-02-20T10:00:00Z"}))
}

// transferWard is where record transfers every fixture: a plain ward name,
// which consumers see only as its pseudonym too.
const transferWard = "Ward 6"

// eventsPerFixture is how many events record appends.
const eventsPerFixture = 14

// The Safe Harbor corpus: fixture patients with every identifier kind, in
// every event type, known fields and unknown ones. No identifier survives
// in any de-identified message, headers included; every event type comes
// through with a payload; pseudonyms are stable within the tenant and
// unlinkable across tenants.
func TestDeidentifiedCorpusCarriesNoIdentifier(t *testing.T) {
	t.Parallel()
	e := newDeidEnv(t, deid.DatesYear)
	tenant, other := e.tenant, testkit.MustTenant(t)
	e.cfg.Tenants = append(e.cfg.Tenants, other)
	e.start()
	fixtures := []fixture{newFixture(1), newFixture(2)}
	for _, f := range fixtures {
		e.record(tenant, f)
	}
	twin := fixtures[0] // the same patient id in another tenant
	e.record(other, twin)
	msgs := e.waitDeidentified(tenant, len(fixtures)*eventsPerFixture)
	if len(msgs) != len(fixtures)*eventsPerFixture {
		t.Fatalf("%d de-identified messages, want %d", len(msgs), len(fixtures)*eventsPerFixture)
	}
	for _, f := range fixtures {
		if found := leaks(msgs, f.identifiers()); len(found) > 0 {
			t.Errorf("identifiers survive de-identification: %q", found)
		}
	}

	types := make(map[string]bool)
	key, err := e.writer.PseudonymKey(testkit.Context(t), tenant)
	if err != nil {
		t.Fatal(err)
	}
	var prev uint64
	for _, m := range msgs {
		if m.body.Withheld == "" {
			types[m.body.Type] = true
		}
		if m.body.Patient != deid.PseudonymOf(key, deid.EntityPatient, fixtures[0].id) && m.body.Patient != deid.PseudonymOf(key, deid.EntityPatient, fixtures[1].id) {
			t.Errorf("%s: patient %q is neither fixture's pseudonym", m.body.Type, m.body.Patient)
		}
		if got := m.headers[workers.HeaderDeidPrev]; len(got) != 1 || got[0] != strconv.FormatUint(prev, 10) {
			t.Errorf("message %d names %v as the tenant's previous, want %d", m.seq, got, prev)
		}
		prev = m.seq
		if err := e.signer.Public().Verify(workers.DeidSignedContent(m.headers, m.raw), m.headers[workers.HeaderSignature][0]); err != nil {
			t.Errorf("message %d: signature %v", m.seq, err)
		}
	}
	for _, s := range commands.EventSpecs() {
		if !types[s.Type] {
			t.Errorf("no de-identified %s came through with its payload", s.Type)
		}
	}
	first := msgs[0].body
	if first.Type != patient.TypeRegistered || first.Payload["age"] != strconv.Itoa(deid.Age(time.Date(1958, 3, 11, 0, 0, 0, 0, time.UTC), time.Now())) ||
		first.Payload["birth_year"] != nil || first.Payload["sex"] != "female" || first.Recorded == "" {
		t.Errorf("first message %+v, want the registration with the age, no birth year, and sex", first)
	}
	// Locations are pseudonyms: consumers can group by them, never read them.
	for _, m := range msgs {
		want, ok := map[string]string{encounter.TypeStarted: "", encounter.TypePatientTransferred: transferWard}[m.body.Type]
		if !ok {
			continue
		}
		if want == "" {
			want = fixtures[0].location
			if m.body.Patient == deid.PseudonymOf(key, deid.EntityPatient, fixtures[1].id) {
				want = fixtures[1].location
			}
		}
		if got := m.body.Payload["location"]; got != deid.LabelPseudonymOf(key, deid.EntityLocation, want) {
			t.Errorf("%s: location %v, want the pseudonym of %q", m.body.Type, got, want)
		}
	}
	theirs := e.waitDeidentified(other, eventsPerFixture)
	if theirs[0].body.Patient == first.Patient || theirs[0].body.Patient == "" {
		t.Errorf("the same patient id has pseudonym %q in both tenants", first.Patient)
	}
}

// A patient erased before the de-identifier reads their events: every one
// is withheld but the erasure, which carries the pseudonym consumers drop.
// The de-identifier resumes from its checkpoint and publishes nothing twice.
func TestErasedPatientsAreWithheldAndRestartsPublishOnce(t *testing.T) {
	t.Parallel()
	e := newDeidEnv(t, deid.DatesShift)
	stopDeid := e.start()
	kept, erased := newFixture(3), newFixture(4)
	e.record(e.tenant, kept)
	e.waitDeidentified(e.tenant, eventsPerFixture)
	stopDeid()
	// As if it died after the acknowledgements, before its checkpoint:
	// the stream holds what the checkpoint does not know of.
	kv, err := e.js.KeyValue(testkit.Context(t), workers.DeidCheckpointBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(testkit.Context(t), e.cfg.Name, []byte(`{"source_seq":0,"deid_seq":0}`)); err != nil {
		t.Fatal(err)
	}

	e.record(e.tenant, erased)
	if err := e.writer.ShredSubject(testkit.Context(t), e.tenant, erased.id); err != nil {
		t.Fatal(err)
	}
	e.startDeid()
	msgs := e.waitDeidentified(e.tenant, 2*eventsPerFixture)
	key, _ := e.writer.PseudonymKey(testkit.Context(t), e.tenant)
	for _, m := range msgs[eventsPerFixture:] {
		switch {
		case m.body.Type == patient.TypeErased:
			if m.body.Withheld != "" || m.body.Patient != deid.PseudonymOf(key, deid.EntityPatient, erased.id) {
				t.Errorf("the erasure: %+v, want it told with the pseudonym", m.body)
			}
		case m.body.Withheld != deid.WithheldErased || m.body.Payload != nil || m.body.Patient != "":
			t.Errorf("%s of an erased patient: %s, want withheld", m.body.Type, m.raw)
		}
	}
	if found := leaks(withoutDateValues(t, msgs), erased.identifiers()); len(found) > 0 {
		t.Errorf("identifiers survive: %q", found)
	}

	// Shifted dates: the kept patient's observation is within a year of
	// the true date, and not on it; no erasure tells its true time.
	for _, m := range msgs {
		if m.body.Type == patient.TypeErased && m.body.Payload["erased_at"] == "2026-02-20T10:00:00Z" {
			t.Errorf("an erasure tells its true time: %s", m.raw)
		}
	}
	for _, m := range msgs[:eventsPerFixture] {
		if m.body.Type != patient.TypeObservationRecorded {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m.body.Payload["effective_at"].(string))
		if shift := at.Sub(time.Date(2026, 2, 3, 9, 15, 0, 0, time.UTC)); err != nil || shift == 0 || shift.Abs() > 366*24*time.Hour {
			t.Errorf("shifted effective_at %v (%v)", m.body.Payload["effective_at"], err)
		}
	}
	assertOncePerEvent(t, msgs)
}

// assertOncePerEvent checks that no event was published twice and that
// each stream's versions arrive in order.
func assertOncePerEvent(t *testing.T, msgs []deidMsg) {
	t.Helper()
	seen := make(map[string]bool)
	versions := make(map[string][]int64)
	for _, m := range msgs {
		if seen[m.body.EventID] {
			t.Errorf("event %s de-identified twice", m.body.EventID)
		}
		seen[m.body.EventID] = true
		if m.body.Stream.ID != "" {
			versions[m.body.Stream.ID] = append(versions[m.body.Stream.ID], m.body.Version)
		}
	}
	for stream, vs := range versions {
		if !slices.IsSorted(vs) {
			t.Errorf("stream %s: versions %v out of order", stream, vs)
		}
	}
}

// Events whose PHI, or whose tenant's key, this deployment cannot unwrap
// (sealed under another key-encryption key) are withheld as unreadable;
// they hold up no one, neither their tenant's next events nor another
// tenant's.
func TestUnreadableEventsAreWithheldNotStalling(t *testing.T) {
	t.Parallel()
	e := newDeidEnv(t, deid.DatesYear)
	foreign := testkit.MustTenant(t)
	e.cfg.Tenants = append(e.cfg.Tenants, foreign)
	// Another deployment's keys: the de-identifier's store cannot open
	// what this one seals, nor the pseudonym key it makes first.
	other := mustStoreWith(t, "DATABASE_URL", commands.EventSpecs())
	if _, err := other.PseudonymKey(testkit.Context(t), foreign); err != nil {
		t.Fatal(err)
	}
	e.start()
	f := newFixture(5)
	pat := chartstream.StreamRef{Type: patient.StreamType, ID: f.id}
	body := []byte(`{"mrn":"` + f.mrn + `","name":{"family":"` + f.family + `"},"birth_date":"` + f.birth + `","sex":"female"}`)
	if _, err := other.Append(testkit.Context(t), foreign, pat, chartstream.NoStream, chartstream.NewEvent{Type: patient.TypeRegistered, Payload: body}); err != nil {
		t.Fatal(err)
	}
	e.appendAs(e.tenant, chartstream.StreamRef{Type: patient.StreamType, ID: uuid.New()}, patient.TypeDeceased, map[string]any{"deceased_at": f.deceased})
	theirs := e.waitDeidentified(foreign, 1)
	if m := theirs[0].body; m.Withheld != deid.WithheldUnreadable || m.Payload != nil || m.EventID != "" || m.Stream.ID != "" {
		t.Errorf("an unreadable event: %s, want withheld without pseudonyms", theirs[0].raw)
	}
	if found := leaks(theirs, f.identifiers()); len(found) > 0 {
		t.Errorf("identifiers survive: %q", found)
	}
	if ours := e.waitDeidentified(e.tenant, 1); ours[0].body.Withheld != "" || ours[0].body.Type != patient.TypeDeceased {
		t.Errorf("the next tenant's event: %s", ours[0].raw)
	}
}

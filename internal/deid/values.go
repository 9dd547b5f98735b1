package deid

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"regexp"

	"github.com/google/uuid"
)

// pseudonyms makes keyed pseudonyms under a tenant's key.
type pseudonyms struct{ key []byte }

// mac is HMAC-SHA-256 under the tenant's key of a purpose-labelled input,
// so pseudonyms of different entities, and shift offsets, never coincide.
func (p pseudonyms) mac(purpose string, data []byte) []byte {
	h := hmac.New(sha256.New, p.key)
	h.Write([]byte("chartstream-deid-v1"))
	h.Write([]byte{0})
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write(data)
	return h.Sum(nil)
}

// id is an entity id's pseudonym: 128 bits of the MAC, in hex. The same id
// gets the same pseudonym within a tenant; another tenant's key gives
// another, and without the key none can be traced back.
func (p pseudonyms) id(entity string, id uuid.UUID) string {
	return hex.EncodeToString(p.mac(entity, id[:])[:16])
}

// label is a label's pseudonym: like id's, under a purpose of its own
// ("label:" and the entity), so a label's pseudonym never coincides with
// an id's. The label is taken byte for byte: "Ward 4" and "ward 4" differ,
// as they do in the analytics tables.
func (p pseudonyms) label(entity, label string) string {
	return hex.EncodeToString(p.mac("label:"+entity, []byte(label))[:16])
}

// LabelPseudonymOf is the pseudonym of a label (a location) under a
// tenant's key, as messages carry it.
func LabelPseudonymOf(key []byte, entity, label string) string {
	return pseudonyms{key: key}.label(entity, label)
}

// PseudonymOf is the pseudonym of an entity's id under a tenant's key, as
// messages carry it (for tests and for operators answering a subject's
// request with the tenant's key in hand).
func PseudonymOf(key []byte, entity string, id uuid.UUID) string {
	return pseudonyms{key: key}.id(entity, id)
}

// restrictedZIP3 are the three-digit ZIP prefixes whose areas held 20,000
// people or fewer (2000 Census, as HHS's Safe Harbor guidance lists them):
// they become 000.
var restrictedZIP3 = map[string]bool{
	"036": true, "059": true, "063": true, "102": true, "203": true, "556": true, "692": true, "790": true,
	"821": true, "823": true, "830": true, "831": true, "878": true, "879": true, "884": true, "890": true, "893": true,
}

var zipPattern = regexp.MustCompile(`^([0-9]{3})[0-9]{2}(-[0-9]{4})?$`)

// ZIP3 is a US ZIP code's Safe Harbor form: its first three digits, or
// "000" for the sparsely populated areas; false for anything not a ZIP
// code (which is then dropped).
func ZIP3(zip string) (string, bool) {
	m := zipPattern.FindStringSubmatch(zip)
	if m == nil {
		return "", false
	}
	if restrictedZIP3[m[1]] {
		return "000", true
	}
	return m[1], true
}

// Patterns of kept strings: narrow enough that no name or sentence fits.
var (
	// codePattern fits LOINC (8867-4), SNOMED CT and RxNorm (digits),
	// ICD-10 (E11.9) codes.
	codePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.\-]{0,31}$`)
	// unitPattern fits UCUM units such as mm[Hg], /min, kg/m2, mg/dL,
	// without {annotations}, which are free text.
	unitPattern = regexp.MustCompile(`^[A-Za-z0-9%/.*^\[\]\-]{1,16}$`)
)

// knownSystems are the terminologies whose codes are kept.
var knownSystems = map[string]bool{
	"http://loinc.org": true,
	"http://www.nlm.nih.gov/research/umls/rxnorm": true,
	"http://snomed.info/sct":                      true,
	"http://hl7.org/fhir/sid/icd-10":              true,
	"http://hl7.org/fhir/sid/icd-10-cm":           true,
	"http://unitsofmeasure.org":                   true,
}

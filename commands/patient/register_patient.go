package patient

import (
	"context"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/internal/check"
	"github.com/chartstream/chartstream/commands/internal/decision"
)

// Input limits for demographics.
const (
	maxMRN        = 64
	maxNamePart   = 100
	maxGivenNames = 5
	maxPhone      = 32
	maxEmail      = 254
	// maxAge bounds a birth date in years: older is a typing error.
	maxAge = 150
)

// RegisterPatient admits a new patient to the tenant's patient index.
type RegisterPatient struct {
	// PatientID is the new patient's id; zero lets the handler choose one.
	PatientID uuid.UUID
	// MRN is the medical record number, unique within the tenant.
	MRN string
	// Name needs at least a family name.
	Name HumanName
	// BirthDate is YYYY-MM-DD, not in the future.
	BirthDate string
	Sex       Sex
	// Contact is optional.
	Contact Contact
}

// Validate reports every problem with the input as one EINVALID error.
func (c RegisterPatient) Validate(now time.Time) error {
	var p check.Problems
	p.Token("mrn", c.MRN, maxMRN)
	checkName(&p, c.Name)
	checkBirthDate(&p, c.BirthDate, now)
	checkSex(&p, c.Sex)
	checkContact(&p, c.Contact)
	return p.Err()
}

// decide registers a patient not registered yet. Errors: EINVALID for bad
// input, ECONFLICT for a patient already registered under this id. A second
// patient with the same MRN is refused by the event store, through the
// registration's unique claim, with ECONFLICT.
func (c RegisterPatient) decide(p *Patient, now time.Time) ([]Event, error) {
	if err := c.Validate(now); err != nil {
		return nil, err
	}
	if p.Registered() {
		return nil, chartstream.Errorf(chartstream.ECONFLICT, "patient is already registered")
	}
	return []Event{PatientRegistered{MRN: c.MRN, Name: c.Name, BirthDate: c.BirthDate, Sex: c.Sex, Contact: c.Contact}}, nil
}

// CommandName is the command's name in logs and metrics.
func (RegisterPatient) CommandName() string { return "patient.register_patient" }

// Target is the patient's stream.
func (c RegisterPatient) Target() chartstream.StreamRef { return Stream(c.PatientID) }

// Execute registers the patient; the result's ID is the patient id. A
// conflict means the patient or the MRN exists: it is the answer, so it is
// never decided again.
func (c RegisterPatient) Execute(ctx context.Context, env decision.Env, tenant chartstream.TenantID, md chartstream.Metadata) (chartstream.CommandResult, error) {
	now := env.Now()
	if err := c.Validate(now); err != nil {
		return chartstream.CommandResult{}, err
	}
	if c.PatientID == uuid.Nil {
		c.PatientID = decision.NewID(md, "patient")
	}
	return patients(env).Update(ctx, tenant, c.PatientID, nil, md, func(p *Patient) ([]Event, error) { return c.decide(p, now) })
}

func checkName(p *check.Problems, n HumanName) {
	p.Text("name.family", n.Family, true, maxNamePart)
	if len(n.Given) > maxGivenNames {
		p.Add("name.given", fmt.Sprintf("must have at most %d names", maxGivenNames))
		return
	}
	for i, g := range n.Given {
		p.Text(fmt.Sprintf("name.given[%d]", i), g, true, maxNamePart)
	}
}

func checkBirthDate(p *check.Problems, date string, now time.Time) {
	d, ok := p.Date("birth_date", date, now)
	if ok && d.Before(now.AddDate(-maxAge, 0, 0)) {
		p.Add("birth_date", fmt.Sprintf("must be within the last %d years", maxAge))
	}
}

func checkSex(p *check.Problems, s Sex) {
	p.OneOf("sex", string(s), string(SexFemale), string(SexMale), string(SexOther), string(SexUnknown))
}

func checkContact(p *check.Problems, c Contact) {
	if p.Text("contact.phone", c.Phone, false, maxPhone) &&
		strings.TrimLeft(c.Phone, "+0123456789 -().") != "" {
		p.Add("contact.phone", "must contain only digits, spaces and + - ( ) .")
	}
	if p.Text("contact.email", c.Email, false, maxEmail) {
		// ParseAddress also accepts "Name <addr>"; only a bare address is
		// an email field.
		if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email {
			p.Add("contact.email", "must be an email address")
		}
	}
}

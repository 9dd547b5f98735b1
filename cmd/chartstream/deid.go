package main

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/asyncapi"
	"github.com/chartstream/chartstream/internal/deid"
	"github.com/chartstream/chartstream/workers"
)

// deidSettings configure the de-identifier the workers run (DEID_*).
type deidSettings struct {
	// Enabled runs the de-identifier with the workers (DEID_ENABLED).
	// Default true.
	Enabled bool
	// Stream is the de-identified stream (DEID_STREAM). Default
	// CLINICAL_DEID.
	Stream string
	// Dates is year (Safe Harbor) or shift (DEID_DATES). Default year.
	Dates string
	// MaxShiftDays bounds a patient's date shift (DEID_MAX_SHIFT_DAYS).
	// Default 365.
	MaxShiftDays int
	// AgeSpanYears is the longest span of a patient's events consumers
	// hold (DEID_AGE_SPAN_YEARS): ages from 90 less it are one category.
	// Default 10.
	AgeSpanYears int
	// Name, SubjectPrefix and Tenants have no setting: tests and benches
	// give their de-identifier a lease, subjects and tenants of their
	// own (workers.DeidentifierConfig; defaults deid, deid, all).
	Name, SubjectPrefix string
	Tenants             []chartstream.TenantID
}

func (s *deidSettings) flags(fs *pflag.FlagSet) {
	boolFlag(fs, &s.Enabled, "deid-enabled", "DEID_ENABLED", true, "run the de-identifier (CLINICAL to the de-identified stream) with the workers")
	stringFlag(fs, &s.Stream, "deid-stream", "DEID_STREAM", workers.DefaultDeidStream, "JetStream stream of de-identified events")
	stringFlag(fs, &s.Dates, "deid-dates", "DEID_DATES", string(deid.DatesYear), "year (HIPAA Safe Harbor) or shift (per-patient keyed offset; not Safe Harbor)")
	intFlag(fs, &s.MaxShiftDays, "deid-max-shift-days", "DEID_MAX_SHIFT_DAYS", 365, "largest date shift in days, with DEID_DATES=shift")
	intFlag(fs, &s.AgeSpanYears, "deid-age-span-years", "DEID_AGE_SPAN_YEARS", 10, "longest span in years of a patient's de-identified events a consumer holds; ages from 90 less it are published as one category")
}

// Validate reports every problem with the settings (the API's
// /asyncapi.json describes the stream as configured, so serve checks them
// too).
func (s deidSettings) Validate() error {
	var errs []error
	if err := s.rules().Validate(); err != nil {
		errs = append(errs, errors.New("DEID_DATES must be year or shift, DEID_MAX_SHIFT_DAYS 1 to 3650, DEID_AGE_SPAN_YEARS 1 to 60"))
	}
	if s.Stream == "" {
		errs = append(errs, errors.New("DEID_STREAM must not be empty"))
	}
	return errors.Join(errs...)
}

func (s deidSettings) rules() deid.Config {
	return deid.Config{Dates: deid.DateMode(s.Dates), MaxShiftDays: s.MaxShiftDays, AgeSpanYears: s.AgeSpanYears}
}

// openDeidentifier builds the de-identifier on the relay's stream. It
// opens PHI as the app role (opener), like the projector.
func (m *Main) openDeidentifier(js jetstream.JetStream, opener *eventstore.Store, signer workers.Signer, verifier workers.Verifier) error {
	s := m.Config.Deid
	if !s.Enabled {
		return nil
	}
	rules, err := deid.New(commands.EventSpecs(), s.rules())
	if err != nil {
		return err
	}
	relay := m.Config.Relay
	m.deidentifier, err = workers.NewDeidentifier(workers.DeidentifierDeps{
		JetStream: js, Sessions: m.sessions, Events: opener, Rules: rules, Verifier: verifier, Signer: signer, Logger: m.Logger,
	}, workers.DeidentifierConfig{Name: s.Name, Source: relay.Stream, SourcePrefix: relay.SubjectPrefix, Stream: s.Stream,
		SubjectPrefix: s.SubjectPrefix, Tenants: s.Tenants,
		Replicas: relay.Replicas, DuplicateWindow: relay.DuplicateWindow, MaxAge: relay.MaxAge, MaxBytes: relay.MaxBytes})
	if err != nil {
		return fmt.Errorf("de-identifier: %w", err)
	}
	return nil
}

// asyncAPI is the AsyncAPI document of the streams as configured.
func (c Config) asyncAPI() ([]byte, error) {
	rules, err := deid.New(commands.EventSpecs(), c.Deid.rules())
	if err != nil {
		return nil, err
	}
	streams := asyncapi.DefaultStreams
	streams.Raw, streams.Deid = c.Relay.Stream, c.Deid.Stream
	if c.Relay.SubjectPrefix != "" {
		streams.RawPrefix = c.Relay.SubjectPrefix
	}
	if c.Deid.SubjectPrefix != "" {
		streams.DeidPrefix = c.Deid.SubjectPrefix
	}
	return asyncapi.Document(commands.EventSpecs(), rules, streams)
}

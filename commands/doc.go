// Package commands is the write side of the clinical domain, one package per
// aggregate: patient, encounter and medicationorder. Each command is decided
// by a pure function of (command, current state, now) and appended through
// the EventStore interface its package declares, so that nothing here
// depends on PostgreSQL, NATS, Echo or the workers; imports_test.go keeps it
// so.
package commands

// Package projections is the query side: one package per read model
// (chart, observations, census, orders), each with a Projector that applies
// events to its tables and the queries the API serves from them.
//
// A projector's Apply runs inside the runner's tenant transaction, which
// also advances the projection's row in projection_checkpoints. Apply is
// idempotent: rows are keyed by the ids in the events, and a row that
// several events change carries the version of the last one applied, so a
// redelivered event changes nothing. Projector SQL names tables unqualified,
// so a rebuild can replay into the twins in schema rebuild (see
// migrations/0004_read_models.sql).
//
// This package holds what the read models share: keyset-paginated listings.
package projections

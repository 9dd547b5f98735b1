-- The relay's checkpoint: the gap-free cursor (see eventstore.Cursor) of the
-- last event JetStream acknowledged. Not tenant data: one row per relay.
CREATE TABLE relay_checkpoints (
	name       text PRIMARY KEY,
	txid       bigint NOT NULL,
	position   bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE ON relay_checkpoints TO chartstream_relay;

---- create above / drop below ----

DROP TABLE relay_checkpoints;

-- External consumers of a tenant's clinical stream (chartstream subscriber
-- create): each reads the tenant's subjects of CLINICAL or CLINICAL_DEID
-- through a durable JetStream consumer the platform created, as a NATS
-- user allowed nothing else (see internal/natsauth). The row says who was
-- given access to what, and when it was revoked; the user's NATS
-- credentials are never stored.
CREATE TABLE stream_subscribers (
	tenant_id    uuid NOT NULL REFERENCES tenants (id),
	id           uuid NOT NULL,
	name         text NOT NULL CONSTRAINT stream_subscribers_name_format CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
	deidentified boolean NOT NULL,
	stream       text NOT NULL,
	consumer     text NOT NULL,
	user_key     text NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now(),
	revoked_at   timestamptz,
	PRIMARY KEY (tenant_id, id)
);
-- A name is reused only after its subscriber was revoked.
CREATE UNIQUE INDEX stream_subscribers_active_name ON stream_subscribers (tenant_id, name) WHERE revoked_at IS NULL;
SELECT chartstream_enable_tenant_rls('stream_subscribers');
-- Only the owner (the subscriber command, DATABASE_ADMIN_URL) uses it: no
-- grant to the app roles.

---- create above / drop below ----

DROP TABLE stream_subscribers;

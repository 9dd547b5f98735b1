-- Each tenant's read models exist twice: in schema public and in schema
-- rebuild (the twins of 0004). read_model_copies says which copy is the
-- tenant's live one; a tenant without a row reads public.
--
-- A rebuild (and a verification) replays the event store into the tenant's
-- other copy in short transactions, then switches copies in one tiny
-- transaction: readers see the rebuilt read models at once, and no
-- transaction ever holds an xid for the length of a copy, which would hold
-- back the event store's gap-free horizon (see eventstore.ReadAll) and stop
-- the relay for every tenant.
CREATE TABLE read_model_copies (
	tenant_id   uuid PRIMARY KEY REFERENCES tenants (id),
	live        text NOT NULL CONSTRAINT read_model_copies_live CHECK (live IN ('public', 'rebuild')),
	switched_at timestamptz NOT NULL DEFAULT now()
);
SELECT chartstream_enable_tenant_rls('read_model_copies');
GRANT SELECT, INSERT, UPDATE ON read_model_copies TO chartstream_app;

-- chartstream_read_models returns the search_path under which the tenant's
-- live copy (standby false) or other copy (standby true) of the read models
-- resolves; every other table resolves in public either way. It runs with
-- the caller's rights, under the caller's RLS, and names its table fully.
CREATE FUNCTION chartstream_read_models(tenant uuid, standby boolean) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
	SELECT CASE WHEN (coalesce((SELECT c.live FROM public.read_model_copies c WHERE c.tenant_id = tenant), 'public') = 'public') = standby
		THEN 'rebuild, public' ELSE 'public' END
$$;

-- Events a projection could not apply and set aside (dead-lettered), so the
-- tenant's later events could be applied. The read model is then not exact:
-- projections verify and rebuild report these, by id only (no PHI).
CREATE TABLE projection_dead_letters (
	tenant_id     uuid NOT NULL,
	projection    text NOT NULL,
	event_id      uuid NOT NULL,
	event_type    text NOT NULL,
	position      bigint NOT NULL,
	reason        text NOT NULL,
	dead_at       timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT projection_dead_letters_pkey PRIMARY KEY (tenant_id, projection, event_id)
);
SELECT chartstream_enable_tenant_rls('projection_dead_letters');
GRANT SELECT, INSERT, DELETE ON projection_dead_letters TO chartstream_app;
-- Set aside in one copy is set aside in that copy only: it switches with
-- the copy's read models and checkpoints.
CREATE TABLE rebuild.projection_dead_letters (LIKE public.projection_dead_letters INCLUDING ALL);
SELECT chartstream_enable_tenant_rls('rebuild.projection_dead_letters');
GRANT SELECT, INSERT, DELETE ON rebuild.projection_dead_letters TO chartstream_app;

---- create above / drop below ----

DROP TABLE rebuild.projection_dead_letters;
DROP TABLE projection_dead_letters;
DROP FUNCTION chartstream_read_models(uuid, boolean);
DROP TABLE read_model_copies;

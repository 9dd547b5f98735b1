-- Per-tenant secret keys for keyed hashes, wrapped by the tenant's
-- key-encryption key like the data keys: the database holds them only in a
-- form it cannot open. "claims" keys the hash of unique values (a
-- patient's MRN in unique_claims), so that a hash cannot be reversed by
-- hashing every possible MRN, nor linked across tenants.
CREATE TABLE tenant_keys (
	tenant_id  uuid NOT NULL REFERENCES tenants (id),
	purpose    text NOT NULL CONSTRAINT tenant_keys_purpose CHECK (purpose ~ '^[a-z][a-z_]{0,30}$'),
	wrapped    bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, purpose)
);
SELECT chartstream_enable_tenant_rls('tenant_keys');
GRANT SELECT, INSERT ON tenant_keys TO chartstream_app;

-- Claims made before this migration hash the value without a key; they no
-- longer match new claims' keyed hashes. None exist outside development.
COMMENT ON COLUMN unique_claims.value_hash IS 'HMAC-SHA-256 of scope and value under the tenant''s claims key (tenant_keys)';

-- An erased patient's unique values (its MRN) are released with its key:
-- a hash of them kept would link the erased record back to its MRN.
GRANT DELETE ON unique_claims TO chartstream_app;

---- create above / drop below ----

REVOKE DELETE ON unique_claims FROM chartstream_app;
COMMENT ON COLUMN unique_claims.value_hash IS NULL;
DROP TABLE tenant_keys;

-- Positions stay inside the tenant. A checkpoint signed its last event's
-- global commit position (last_txid, last_position), which every export
-- carried to the tenant's auditors, and its running hash covered each
-- event's position: a tenant could count the other tenants' writes.
-- Checkpoints now sign the last event's cursor sealed under the tenant's
-- own "cursors" key (eventstore.CursorCodec), and the running hash covers
-- only the events' hashes in commit order (chain v2). last_txid and
-- last_position stay, unsigned: where verification, which holds no keys,
-- stops comparing (a changed one misplaces the cut, and the signed count
-- and hash then differ).
--
-- Version 1 checkpoints cannot be re-signed as version 2 without vouching
-- again for whatever the history is now, so they are dropped and the
-- anchor worker anchors every tenant again from its first event: a
-- pre-production format change. The anchor's own cursor starts over with
-- them.
ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_no_truncate;
TRUNCATE audit_checkpoints;
ALTER TABLE audit_checkpoints ENABLE TRIGGER audit_checkpoints_no_truncate;
DELETE FROM relay_checkpoints WHERE name LIKE 'anchor.%';
ALTER TABLE audit_checkpoints ADD COLUMN last_token text NOT NULL;
COMMENT ON COLUMN audit_checkpoints.last_token IS 'the last event''s cursor, sealed under the tenant''s cursors key (eventstore.CursorCodec); empty for none';

-- The anchor worker, as the relay role, seals each checkpoint's last
-- cursor with the tenant's cursors key, made on first use. That key only:
-- a restrictive policy keeps the relay from the tenants' other keys (the
-- MRN claims key, the pseudonym key).
GRANT SELECT, INSERT ON tenant_keys TO chartstream_relay;
CREATE POLICY relay_cursor_keys ON tenant_keys AS RESTRICTIVE TO chartstream_relay
	USING (purpose = 'cursors') WITH CHECK (purpose = 'cursors');

---- create above / drop below ----

DROP POLICY relay_cursor_keys ON tenant_keys;
REVOKE SELECT, INSERT ON tenant_keys FROM chartstream_relay;
ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_no_truncate;
TRUNCATE audit_checkpoints;
ALTER TABLE audit_checkpoints ENABLE TRIGGER audit_checkpoints_no_truncate;
DELETE FROM relay_checkpoints WHERE name LIKE 'anchor.%';
ALTER TABLE audit_checkpoints DROP COLUMN last_token;

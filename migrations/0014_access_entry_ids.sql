-- The PHI access log wrote at least once: a flush whose COMMIT reached the
-- database but whose answer a network cut lost was retried and written
-- again, the same read logged twice. Each entry now carries an id given
-- when it is recorded, and a retried write skips the ids the table holds
-- (INSERT ... ON CONFLICT DO NOTHING). The chaining trigger only computes
-- the new row's number and hashes under a lock, with no other effect, so a
-- skipped row leaves no gap. Entries written before have no id (NULLs are
-- distinct in the index).
ALTER TABLE phi_access_log ADD COLUMN entry_id uuid;
CREATE UNIQUE INDEX phi_access_log_entry ON phi_access_log (tenant_id, entry_id);

---- create above / drop below ----

DROP INDEX phi_access_log_entry;
ALTER TABLE phi_access_log DROP COLUMN entry_id;

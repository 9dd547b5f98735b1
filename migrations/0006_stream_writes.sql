-- Writes to several streams at once, each with its own condition, and
-- appends that need not name the stream's exact version.
--
-- Every append transaction first locks the streams it writes (and, shared,
-- the streams whose state it only checks), all at once and in one order, so
-- that:
--   * a condition checked on a stream holds until the transaction commits:
--     a writer to that stream waits (a prescription and an allergy recorded
--     at the same moment cannot both pass);
--   * an append at "any version" reads the stream's head when no other
--     writer of the stream is in flight, and its transaction gets its xid
--     only after the earlier writer committed: a stream's versions commit in
--     transaction-id order, so the event store's gap-free read (ordered by
--     txid, position) never returns a stream's version v+1 before v.
-- The locks are transaction-scoped advisory locks on a hash of (tenant,
-- stream): no rows are written, and sorted acquisition cannot deadlock.

CREATE FUNCTION chartstream_lock_streams(exclusive bigint[], shared bigint[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
	k bigint;
BEGIN
	FOR k IN SELECT DISTINCT u FROM unnest(exclusive || shared) AS u ORDER BY u LOOP
		IF k = ANY (exclusive) THEN
			PERFORM pg_advisory_xact_lock(k);
		ELSE
			PERFORM pg_advisory_xact_lock_shared(k);
		END IF;
	END LOOP;
END
$$;

-- chartstream_check_stream returns the stream's version (0 when it does
-- not exist) after checking that the stream is as a write expects:
--   expected >= 0: exactly at that version;
--   unless not empty: no event of one of those types after version since
--   (the events a decision taken at version since depends on).
-- A stream that is not raises check_violation on constraint
-- events_expected_version or events_changed_since, and the transaction
-- writes nothing. It runs with the caller's rights, under its RLS.
CREATE FUNCTION chartstream_check_stream(tenant uuid, stream uuid, expected bigint, since bigint, unless text[]) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
	head bigint;
BEGIN
	SELECT coalesce(max(e.version), 0) INTO head FROM public.events e WHERE e.tenant_id = tenant AND e.stream_id = stream;
	IF expected >= 0 AND head <> expected THEN
		RAISE EXCEPTION 'event store: the stream is at version %, not %', head, expected
			USING ERRCODE = 'check_violation', CONSTRAINT = 'events_expected_version';
	END IF;
	IF cardinality(unless) > 0 AND EXISTS (SELECT 1 FROM public.events e
		WHERE e.tenant_id = tenant AND e.stream_id = stream AND e.version > since AND e.event_type = ANY (unless)) THEN
		RAISE EXCEPTION 'event store: the stream changed since version %', since
			USING ERRCODE = 'check_violation', CONSTRAINT = 'events_changed_since';
	END IF;
	RETURN head;
END
$$;

REVOKE ALL ON FUNCTION chartstream_lock_streams(bigint[], bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION chartstream_check_stream(uuid, uuid, bigint, bigint, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chartstream_lock_streams(bigint[], bigint[]) TO chartstream_app;
GRANT EXECUTE ON FUNCTION chartstream_check_stream(uuid, uuid, bigint, bigint, text[]) TO chartstream_app;

---- create above / drop below ----

DROP FUNCTION chartstream_check_stream(uuid, uuid, bigint, bigint, text[]);
DROP FUNCTION chartstream_lock_streams(bigint[], bigint[]);

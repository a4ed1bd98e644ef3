-- 00_setup: helpers shared by the other files (they all run in the same database).
--
-- chk(view, ...): for each ivm view v, checks it against PostgreSQL itself:
--   verify : ivm.verify(v), rows differing from a from-scratch evaluation
--   diff   : rows in the symmetric multiset difference (EXCEPT ALL both ways) between
--            the ivm view table v and the plain view o_v defining the same query.
--            Rows are compared in text form, so even numeric scale (1.5 vs 1.50) counts.
-- Both must be 0.
CREATE FUNCTION chk(VARIADIC views text[])
RETURNS TABLE (view text, verify bigint, diff bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v text;
BEGIN
    FOREACH v IN ARRAY views LOOP
        view := v;
        verify := ivm.verify(v);
        EXECUTE format(
            'SELECT count(*) FROM ((SELECT t::text FROM %1$I t EXCEPT ALL SELECT t::text FROM %2$I t)'
            ' UNION ALL (SELECT t::text FROM %2$I t EXCEPT ALL SELECT t::text FROM %1$I t)) d',
            v, 'o_' || v) INTO diff;
        RETURN NEXT;
    END LOOP;
END
$$;

-- CALL try(sql): runs sql; on error prints "SQLSTATE: message" as a NOTICE (with the error's
-- DETAIL and HINT, if any), so the expected output shows the error code without unstable
-- context lines or source locations.  Temporary schema names (pg_temp_3) print as pg_temp_N.
CREATE PROCEDURE try(sql text)
LANGUAGE plpgsql AS $$
DECLARE
    state text;
    msg text;
    det text;
    hnt text;
BEGIN
    EXECUTE sql;
    RAISE NOTICE 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    msg := regexp_replace(msg, 'pg_temp_[0-9]+', 'pg_temp_N', 'g');
    IF det <> '' AND hnt <> '' THEN
        RAISE NOTICE '%: %', state, msg USING DETAIL = det, HINT = hnt;
    ELSIF det <> '' THEN
        RAISE NOTICE '%: %', state, msg USING DETAIL = det;
    ELSIF hnt <> '' THEN
        RAISE NOTICE '%: %', state, msg USING HINT = hnt;
    ELSE
        RAISE NOTICE '%: %', state, msg;
    END IF;
END
$$;

-- chk_all(): chk() over every (user-visible) ivm view in the current schema, as one line:
-- "N views exact", or the views that differ.  Each test file works in its own schema.
CREATE FUNCTION chk_all() RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    c record;
    n int := 0;
    bad text := '';
BEGIN
    FOR r IN
        SELECT t.relname FROM ivm.views v JOIN pg_class t ON t.oid = v.viewid
        WHERE t.relnamespace = current_schema()::regnamespace AND NOT v.internal
        ORDER BY t.relname
    LOOP
        SELECT * INTO c FROM chk(r.relname::text);
        n := n + 1;
        IF c.verify <> 0 OR c.diff <> 0 THEN
            bad := bad || format(' %s (verify %s, diff %s)', c.view, c.verify, c.diff);
        END IF;
    END LOOP;
    IF bad <> '' THEN
        RETURN 'MISMATCH:' || bad;
    END IF;
    RETURN format('%s views exact', n);
END
$$;

-- mk(name, query): creates the ivm view name AND its oracle, the plain view o_name with the
-- same query.  (Views over ivm views whose oracle must read other oracles are written out.)
CREATE FUNCTION mk(name text, query text) RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
    v regclass;
BEGIN
    v := ivm.create_view(name, query);
    EXECUTE format('CREATE VIEW %I AS %s', 'o_' || name, query);
    RETURN v;
END
$$;

-- Sanity: the extension is loaded and empty.
SELECT extname FROM pg_extension WHERE extname = 'ivm';
SELECT count(*) AS views FROM ivm.views;


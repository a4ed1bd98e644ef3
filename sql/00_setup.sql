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

-- took(pattern): which maintenance paths matching pattern (ivm.maintenance_paths(), whose
-- counts are this session's) ran since the previous call in this session, and how often:
-- "path k, path k", or "nothing".  A session's first call starts the count.
CREATE FUNCTION took(pattern text DEFAULT '%') RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    IF to_regclass('pg_temp.took_seen') IS NULL THEN
        CREATE TEMP TABLE took_seen AS SELECT * FROM ivm.maintenance_paths();
        RETURN 'nothing';
    END IF;
    WITH now AS (SELECT * FROM ivm.maintenance_paths() WHERE path LIKE pattern),
    d AS (SELECT n.path, n.times - s.times AS k FROM now n JOIN took_seen s USING (path) WHERE n.times > s.times),
    upd AS (UPDATE took_seen s SET times = n.times FROM now n WHERE n.path = s.path)
    SELECT coalesce(string_agg(path || ' ' || k, ', ' ORDER BY path), 'nothing') INTO result FROM d;
    RETURN result;
END
$$;

-- Sanity: the extension is loaded and empty.
SELECT extname FROM pg_extension WHERE extname = 'ivm';
SELECT count(*) AS views FROM ivm.views;


-- ivm_leftovers(): what ivm left behind that no view accounts for, or 'none': capture
-- triggers on tables no view reads (and base tables lacking them), guard triggers on tables
-- that are no view, relations in ivm_state that belong to no view, catalog rows or
-- pg_depend entries naming relations that are gone.
CREATE FUNCTION ivm_leftovers() RETURNS text
LANGUAGE sql AS $$
SELECT coalesce(string_agg(x, ', ' ORDER BY x), 'none') FROM (
    SELECT format('capture trigger %s on %s', t.tgname, t.tgrelid::regclass) AS x
    FROM pg_trigger t WHERE t.tgfoid = 'ivm.capture'::regproc
      AND NOT EXISTS (SELECT 1 FROM ivm.dependencies d WHERE d.relid = t.tgrelid)
    UNION ALL
    SELECT format('%s capture triggers on %s', count(t.oid), d.relid::regclass)
    FROM (SELECT DISTINCT relid FROM ivm.dependencies WHERE NOT is_view) d
    LEFT JOIN pg_trigger t ON t.tgrelid = d.relid AND t.tgfoid = 'ivm.capture'::regproc
    GROUP BY d.relid HAVING count(t.oid) <> 5
    UNION ALL
    SELECT format('guard trigger on %s', t.tgrelid::regclass)
    FROM pg_trigger t WHERE t.tgfoid = 'ivm.guard'::regproc
      AND NOT EXISTS (SELECT 1 FROM ivm.views v WHERE v.viewid = t.tgrelid)
    UNION ALL
    SELECT format('relation %s', c.oid::regclass)
    FROM pg_class c WHERE c.relnamespace = 'ivm_state'::regnamespace AND c.relkind = 'r'
      AND NOT EXISTS (SELECT 1 FROM ivm.views v
                      WHERE v.viewid = c.oid OR c.relname IN ('s_' || v.viewid::oid, 'k_' || v.viewid::oid))
      AND NOT EXISTS (SELECT 1 FROM ivm.delta_tables d WHERE d.name = 'ivm_state.' || c.relname)
    UNION ALL
    SELECT format('catalog row of view %s', v.viewid) FROM ivm.views v
    WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = v.viewid)
    UNION ALL
    SELECT format('dependency on relation %s', d.relid) FROM ivm.dependencies d
    WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = d.relid)
    UNION ALL
    SELECT format('delta table row of relation %s', d.relid) FROM ivm.delta_tables d
    WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = d.relid)
    UNION ALL
    SELECT format('pg_depend entry of relation %s', d.objid) FROM pg_depend d
    WHERE d.refclassid = 'pg_extension'::regclass AND d.classid = 'pg_class'::regclass
      AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'ivm') AND d.deptype = 'n'
      AND NOT EXISTS (SELECT 1 FROM ivm.views v WHERE v.viewid = d.objid)
) leftovers
$$;
SELECT ivm_leftovers();

-- ivm 0.1: incrementally maintained materialized views.
\echo Use "CREATE EXTENSION ivm" to load this file. \quit

-- Internal state of the views (aggregate state, key locks, internal views).
CREATE SCHEMA ivm_state;
GRANT USAGE, CREATE ON SCHEMA ivm_state TO PUBLIC;

CREATE SEQUENCE ivm.internal_seq;
GRANT USAGE ON SEQUENCE ivm.internal_seq TO PUBLIC;

-- One row per incremental view.
CREATE TABLE ivm.views (
    viewid      oid PRIMARY KEY,          -- the view table
    name        text NOT NULL,            -- schema-qualified, as created
    query       text NOT NULL,            -- the query as the user wrote it
    definition  text NOT NULL,            -- normalized: every name qualified
    mode        text NOT NULL DEFAULT 'immediate',
    level       int NOT NULL,             -- 1 + the highest level of the views it reads
    plan        text NOT NULL,            -- compiled operator plan
    internal    boolean NOT NULL DEFAULT false,  -- a subquery of another view
    parent      oid,                      -- for internal views: the view owning it
    owner       regrole NOT NULL DEFAULT current_user::regrole,
    created     timestamptz NOT NULL DEFAULT now()
);

-- Which relations (tables and other views) each view reads.
CREATE TABLE ivm.dependencies (
    viewid  oid NOT NULL REFERENCES ivm.views ON DELETE CASCADE,
    relid   oid NOT NULL,
    is_view boolean NOT NULL,
    PRIMARY KEY (viewid, relid)
);
CREATE INDEX ON ivm.dependencies (relid);

-- Deferred mode: where the changes of each relation read by deferred views wait.
CREATE TABLE ivm.delta_tables (
    relid   oid PRIMARY KEY,
    name    text NOT NULL,        -- ivm_state.delta_<relid>
    columns text[] NOT NULL
);

-- What the appliers did, per deferred view.
CREATE TABLE ivm.apply_stats (
    viewid        oid PRIMARY KEY REFERENCES ivm.views ON DELETE CASCADE,
    last_apply    timestamptz,
    last_duration interval,
    applies       bigint NOT NULL DEFAULT 0,
    failures      bigint NOT NULL DEFAULT 0,
    last_error    text,
    last_error_at timestamptz
);

GRANT SELECT, INSERT, UPDATE, DELETE ON ivm.views, ivm.dependencies, ivm.delta_tables, ivm.apply_stats TO PUBLIC;

CREATE FUNCTION ivm.create_view(name text, query text, mode text DEFAULT 'immediate')
RETURNS regclass AS 'MODULE_PATHNAME', 'ivm_create_view' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION ivm.create_view(text, text, text) IS
    'creates a table holding the result of query, kept up to date incrementally';

CREATE FUNCTION ivm.drop_view(name text)
RETURNS void AS 'MODULE_PATHNAME', 'ivm_drop_view' LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION ivm.refresh(name text)
RETURNS bigint AS 'MODULE_PATHNAME', 'ivm_refresh' LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION ivm.verify(name text)
RETURNS bigint AS 'MODULE_PATHNAME', 'ivm_verify' LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION ivm.explain(name text)
RETURNS text AS 'MODULE_PATHNAME', 'ivm_explain' LANGUAGE C STABLE STRICT;

CREATE FUNCTION ivm.apply_deltas(name text DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'ivm_apply_deltas' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION ivm.apply_deltas(text) IS
    'applies the pending changes of all deferred views, or of the relations one view reads; returns view rows changed';

CREATE FUNCTION ivm.set_mode(name text, mode text)
RETURNS void AS 'MODULE_PATHNAME', 'ivm_set_mode' LANGUAGE C VOLATILE STRICT;

-- pending: changes waiting in the delta tables a view reads (through other views too).
CREATE FUNCTION ivm.pending(view oid, OUT changes bigint, OUT oldest timestamptz)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
    c bigint;
    o timestamptz;
BEGIN
    changes := 0;
    FOR t IN
        WITH RECURSIVE r(relid) AS (
            SELECT d.relid FROM ivm.dependencies d WHERE d.viewid = view
            UNION SELECT d.relid FROM ivm.dependencies d JOIN r ON d.viewid = r.relid)
        SELECT dt.name FROM ivm.delta_tables dt JOIN r USING (relid)
    LOOP
        EXECUTE format('SELECT count(*), min(__at) FROM %s', t.name) INTO c, o;
        changes := changes + c;
        IF o IS NOT NULL AND (oldest IS NULL OR o < oldest) THEN
            oldest := o;
        END IF;
    END LOOP;
END
$$;

-- status: how fresh each view is.
CREATE VIEW ivm.status AS
SELECT v.viewid::regclass AS view,
       v.mode,
       pg_catalog.pg_stat_get_live_tuples(v.viewid) AS rows,
       p.changes AS pending_changes,
       p.oldest AS oldest_pending,
       CASE WHEN v.mode = 'immediate' THEN interval '0'
            ELSE coalesce(pg_catalog.clock_timestamp() - p.oldest, interval '0') END AS lag,
       s.last_apply,
       s.last_duration,
       coalesce(s.applies, 0) AS applies,
       coalesce(s.failures, 0) AS failures,
       s.last_error,
       s.last_error_at
FROM ivm.views v
LEFT JOIN ivm.apply_stats s USING (viewid)
CROSS JOIN LATERAL ivm.pending(v.viewid) p
WHERE NOT v.internal;
GRANT SELECT ON ivm.status TO PUBLIC;

CREATE FUNCTION ivm.capture() RETURNS trigger
AS 'MODULE_PATHNAME', 'ivm_capture' LANGUAGE C;

CREATE FUNCTION ivm.guard() RETURNS trigger
AS 'MODULE_PATHNAME', 'ivm_guard' LANGUAGE C;

-- Dropping a table a view reads is refused; dropping a view table cleans up.
CREATE FUNCTION ivm.on_sql_drop() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'ivm_on_sql_drop' LANGUAGE C;
CREATE EVENT TRIGGER ivm_sql_drop ON sql_drop EXECUTE FUNCTION ivm.on_sql_drop();

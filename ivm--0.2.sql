-- ivm 0.1: incrementally maintained materialized views.
\echo Use "CREATE EXTENSION ivm" to load this file. \quit

-- Who does what (README, "Privileges"): ivm's catalog, the delta tables and
-- everything in ivm_state are written by ivm alone, running as the owner of
-- this catalog; a view's maintenance runs as the view's owner.
GRANT USAGE ON SCHEMA ivm TO PUBLIC;

-- Internal state of the views (aggregate state, key locks, internal views),
-- created by ivm and owned by the owner of the view they serve (who reaches
-- them through USAGE), and the delta tables, owned by ivm.  Nobody else
-- creates objects here.
CREATE SCHEMA ivm_state;
GRANT USAGE ON SCHEMA ivm_state TO PUBLIC;

-- Numbers internal views (ivm_state.sq_<n>).
CREATE SEQUENCE ivm.internal_seq;

-- ivm's catalog.  Relations are regclass: pg_dump writes them as names and a
-- restore reads them back as the new oids.  pg_dump dumps the rows
-- (pg_extension_config_dump below); the view tables and ivm_state's tables
-- are ordinary tables, dumped with their data, and their triggers are
-- created after the data is loaded.

-- One row per incremental view.
-- ivm.views and ivm.dependencies are user catalog tables: the ivm output plugin
-- reads them with the historic snapshot of the change it decodes (which
-- relations are views, and which tables they read).
CREATE TABLE ivm.views (
    viewid      regclass PRIMARY KEY,     -- the view table
    name        text NOT NULL,            -- schema-qualified, as created
    query       text NOT NULL,            -- the query as the user wrote it
    definition  text NOT NULL,            -- normalized: every name qualified
    querytree   text NOT NULL,            -- the normalized query as a parse tree, which names
                                          -- relations and columns by oid: renames redeparse it
    mode        text NOT NULL DEFAULT 'immediate',
    level       int NOT NULL,             -- 1 + the highest level of the views it reads
    plan        text NOT NULL,            -- compiled operator plan
    internal    boolean NOT NULL DEFAULT false,  -- a subquery of another view
    parent      regclass,                 -- for internal views: the view owning it
    created     timestamptz NOT NULL DEFAULT now()
) WITH (user_catalog_table = true);

-- Which relations (tables and other views) each view reads.
CREATE TABLE ivm.dependencies (
    viewid  regclass NOT NULL REFERENCES ivm.views ON DELETE CASCADE,
    relid   regclass NOT NULL,
    is_view boolean NOT NULL,
    PRIMARY KEY (viewid, relid)
) WITH (user_catalog_table = true);
CREATE INDEX ON ivm.dependencies (relid);

-- Deferred mode: where the changes of each relation read by deferred views wait.
CREATE TABLE ivm.delta_tables (
    relid   regclass PRIMARY KEY,
    name    text NOT NULL,        -- ivm_state.delta_<relid>
    columns text[] NOT NULL
);

-- What the appliers did, per deferred view.
CREATE TABLE ivm.apply_stats (
    viewid        regclass PRIMARY KEY REFERENCES ivm.views ON DELETE CASCADE,
    last_apply    timestamptz,
    last_duration interval,
    applies       bigint NOT NULL DEFAULT 0,
    failures      bigint NOT NULL DEFAULT 0,
    last_error    text,
    last_error_at timestamptz
);

-- Mode wal: how far the database's slot ivm_<database oid> is applied.  The
-- replication origin of the same name holds the position applied for good
-- (advanced by each apply's commit, crash-safe); this row, written by the same
-- commits, repeats it for ivm.status, says when the apply caught up, and lists
-- the transactions already applied past one that was committing while the
-- apply took its snapshot ('xid:end lsn', see apply/wal.cpp).  Written by ivm
-- alone (as the owner of its catalog), readable by all.
CREATE TABLE ivm.wal_state (
    slot         text PRIMARY KEY,
    applied_lsn  pg_lsn NOT NULL,
    caught_up_at timestamptz NOT NULL,
    ahead        text[]
);
GRANT SELECT ON ivm.wal_state TO PUBLIC;

-- Readable by all, as pg_views is.  Not apply_stats: its errors may quote
-- data, so ivm.status shows them only to roles that may read the view.
GRANT SELECT ON ivm.views, ivm.dependencies, ivm.delta_tables TO PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('ivm.views', '');
SELECT pg_catalog.pg_extension_config_dump('ivm.dependencies', '');
SELECT pg_catalog.pg_extension_config_dump('ivm.delta_tables', '');
SELECT pg_catalog.pg_extension_config_dump('ivm.apply_stats', '');
SELECT pg_catalog.pg_extension_config_dump('ivm.internal_seq', '');

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

-- delta_pending: per delta table, the changes waiting in it and the capture
-- time of the oldest.  Each table is read once, however many views read it.
-- Counts only; security definer, as the delta tables are ivm's.
CREATE FUNCTION ivm.delta_pending(OUT relid regclass, OUT changes bigint, OUT oldest timestamptz)
RETURNS SETOF record
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT dt.relid, dt.name FROM ivm.delta_tables dt ORDER BY dt.relid LOOP
        relid := t.relid;
        EXECUTE format('SELECT count(*), min(__at) FROM %s', t.name) INTO changes, oldest;
        RETURN NEXT;
    END LOOP;
END
$$;

-- pending: changes waiting in the delta tables a view reads (through other views too).
CREATE FUNCTION ivm.pending(view oid, OUT changes bigint, OUT oldest timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE r(relid) AS (
        SELECT d.relid FROM ivm.dependencies d WHERE d.viewid = view
        UNION SELECT d.relid FROM ivm.dependencies d JOIN r ON d.viewid = r.relid)
    SELECT coalesce(sum(p.changes), 0)::bigint, min(p.oldest)
    FROM ivm.delta_pending() p JOIN r USING (relid)
$$;

-- status: how fresh each view is.
CREATE VIEW ivm.status AS
WITH RECURSIVE reads(viewid, relid) AS (
    SELECT d.viewid, d.relid FROM ivm.dependencies d
    UNION SELECT r.viewid, d.relid FROM reads r JOIN ivm.dependencies d ON d.viewid = r.relid),
pending AS MATERIALIZED (SELECT * FROM ivm.delta_pending()),
-- Mode wal: WAL written since the last catch-up (an upper bound of what the
-- views may still miss, in bytes) and the time since then.
wal AS MATERIALIZED (
    SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(),
                                      coalesce(w.applied_lsn, s.confirmed_flush_lsn))::bigint AS bytes,
           pg_catalog.clock_timestamp() - w.caught_up_at AS lag
    FROM pg_catalog.pg_replication_slots s LEFT JOIN ivm.wal_state w ON w.slot = s.slot_name
    WHERE s.slot_name = 'ivm_' || (SELECT d.oid FROM pg_catalog.pg_database d
                                   WHERE d.datname = pg_catalog.current_database()))
SELECT v.viewid::regclass AS view,
       v.mode,
       pg_catalog.pg_stat_get_live_tuples(v.viewid) AS rows,
       coalesce(p.changes, 0) AS pending_changes,
       p.oldest AS oldest_pending,
       CASE WHEN v.mode = 'immediate' THEN interval '0'
            WHEN v.mode = 'wal' THEN greatest(coalesce(pg_catalog.clock_timestamp() - p.oldest, interval '0'),
                                              (SELECT wal.lag FROM wal))
            ELSE coalesce(pg_catalog.clock_timestamp() - p.oldest, interval '0') END AS lag,
       s.last_apply,
       s.last_duration,
       coalesce(s.applies, 0) AS applies,
       coalesce(s.failures, 0) AS failures,
       CASE WHEN pg_catalog.has_table_privilege(v.viewid, 'SELECT') THEN s.last_error END AS last_error,
       s.last_error_at,
       CASE WHEN v.mode = 'wal' THEN greatest((SELECT wal.bytes FROM wal), 0) END AS wal_lag_bytes,
       CASE WHEN v.mode = 'wal' THEN (SELECT wal.lag FROM wal) END AS wal_lag
FROM ivm.views v
LEFT JOIN ivm.apply_stats s USING (viewid)
LEFT JOIN LATERAL (SELECT sum(pd.changes)::bigint AS changes, min(pd.oldest) AS oldest
                   FROM (SELECT DISTINCT relid FROM reads WHERE reads.viewid = v.viewid) r
                   JOIN pending pd USING (relid)) p ON true
WHERE NOT v.internal;
GRANT SELECT ON ivm.status TO PUBLIC;

CREATE FUNCTION ivm.capture() RETURNS trigger
AS 'MODULE_PATHNAME', 'ivm_capture' LANGUAGE C;

-- Row trigger for the changes of a subscription's apply worker (ENABLE REPLICA).
CREATE FUNCTION ivm.capture_row() RETURNS trigger
AS 'MODULE_PATHNAME', 'ivm_capture_row' LANGUAGE C;

CREATE FUNCTION ivm.guard() RETURNS trigger
AS 'MODULE_PATHNAME', 'ivm_guard' LANGUAGE C;

-- progress_tick: counts the rows a populating view reads and reports progress
-- (ivm.progress_rows).  Always true; its support function tells the planner so.
CREATE FUNCTION ivm.progress_support(internal) RETURNS internal
AS 'MODULE_PATHNAME', 'ivm_progress_support' LANGUAGE C STRICT;
CREATE FUNCTION ivm.progress_tick() RETURNS boolean
AS 'MODULE_PATHNAME', 'ivm_progress_tick' LANGUAGE C VOLATILE SUPPORT ivm.progress_support;

-- DDL around incremental views.  View tables depend (pg_depend) on the relations and
-- columns they read, so PostgreSQL itself refuses or cascades drops; these event
-- triggers explain refusals, refuse what PostgreSQL would let break a view (retyping
-- or renaming a column a view reads, inheritance), and keep ivm's catalog right.
CREATE FUNCTION ivm.on_ddl_start() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'ivm_on_ddl_start' LANGUAGE C;
CREATE EVENT TRIGGER ivm_ddl_start ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE', 'DROP TABLE', 'DROP EXTENSION', 'CREATE TABLE', 'DROP TRIGGER', 'ALTER TRIGGER')
    EXECUTE FUNCTION ivm.on_ddl_start();

-- Renaming a relation (or a schema) rewrites the names stored in the views' plans.
CREATE FUNCTION ivm.on_ddl_end() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'ivm_on_ddl_end' LANGUAGE C;
-- A view table's guard trigger created while the view is in the catalog is a
-- restore: the pg_depend entries a dump does not carry are made again.  A
-- unique index or key created may prove a view's key (matching its rows by
-- that key alone).
CREATE EVENT TRIGGER ivm_ddl_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA', 'CREATE TRIGGER', 'CREATE INDEX')
    EXECUTE FUNCTION ivm.on_ddl_end();

-- Dropping a view table (directly or by CASCADE) removes the view from the catalog.
CREATE FUNCTION ivm.on_sql_drop() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'ivm_on_sql_drop' LANGUAGE C;
CREATE EVENT TRIGGER ivm_sql_drop ON sql_drop EXECUTE FUNCTION ivm.on_sql_drop();

-- maintenance_paths: how this session's maintenance did each part of a view's
-- maintenance, and how often: the paths below SQL (key locks taken row by row,
-- aggregate state merged by group, view rows written by key, views filled by
-- create_view and refresh in batches, aggregate deltas summed per group) or
-- the SQL statements they step aside to.  Per session, since it started.
CREATE FUNCTION ivm.path_counts() RETURNS bigint[]
AS 'MODULE_PATHNAME', 'ivm_path_counts' LANGUAGE C VOLATILE;
CREATE FUNCTION ivm.maintenance_paths(OUT path text, OUT times bigint) RETURNS SETOF record
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.path, u.times
    FROM unnest(ARRAY['key locks taken row by row', 'key locks taken by statement',
                      'state merged by group', 'state upserted by statement',
                      'view written by key', 'view written by statement',
                      'view filled below SQL', 'view filled by statement',
                      'deltas summed below SQL', 'deltas summed by statement',
                      'rows computed below SQL', 'rows computed by statement'],
                ivm.path_counts()) AS u(path, times)
$$;

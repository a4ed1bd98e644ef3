-- ivm 0.1 -> 0.2: privileges (maintenance with the view owner's rights), pg_dump support,
-- DDL guards, logical decoding (the ivm output plugin), progress of create_view.
\echo Use "ALTER EXTENSION ivm UPDATE TO '0.2'" to load this file. \quit

-- Privileges (README, "Privileges"): ivm's catalog, the delta tables and ivm_state are
-- written by ivm alone, as the owner of its catalog; a view's maintenance runs as its owner.
GRANT USAGE ON SCHEMA ivm TO PUBLIC;
REVOKE CREATE ON SCHEMA ivm_state FROM PUBLIC;
REVOKE USAGE ON SEQUENCE ivm.internal_seq FROM PUBLIC;
REVOKE INSERT, UPDATE, DELETE ON ivm.views, ivm.dependencies, ivm.delta_tables, ivm.apply_stats FROM PUBLIC;
REVOKE SELECT ON ivm.apply_stats FROM PUBLIC;

-- The status view reads what is retyped below: made again further down.
DROP VIEW ivm.status;
DROP FUNCTION ivm.pending(oid);

-- Relations as regclass (pg_dump writes names, a restore reads back the new oids); the
-- owner is the view table's; the normalized query is kept as a parse tree too.
ALTER TABLE ivm.dependencies DROP CONSTRAINT dependencies_viewid_fkey;
ALTER TABLE ivm.apply_stats DROP CONSTRAINT apply_stats_viewid_fkey;
ALTER TABLE ivm.views ALTER COLUMN viewid TYPE regclass, ALTER COLUMN parent TYPE regclass,
    DROP COLUMN owner, ADD COLUMN querytree text;
ALTER TABLE ivm.dependencies ALTER COLUMN viewid TYPE regclass, ALTER COLUMN relid TYPE regclass;
ALTER TABLE ivm.delta_tables ALTER COLUMN relid TYPE regclass;
ALTER TABLE ivm.apply_stats ALTER COLUMN viewid TYPE regclass;
ALTER TABLE ivm.dependencies ADD FOREIGN KEY (viewid) REFERENCES ivm.views ON DELETE CASCADE;
ALTER TABLE ivm.apply_stats ADD FOREIGN KEY (viewid) REFERENCES ivm.views ON DELETE CASCADE;
-- Read by the ivm output plugin with the historic snapshot of the change it decodes.
ALTER TABLE ivm.views SET (user_catalog_table = true);
ALTER TABLE ivm.dependencies SET (user_catalog_table = true);

SELECT pg_catalog.pg_extension_config_dump('ivm.views', '');
SELECT pg_catalog.pg_extension_config_dump('ivm.dependencies', '');
SELECT pg_catalog.pg_extension_config_dump('ivm.delta_tables', '');
SELECT pg_catalog.pg_extension_config_dump('ivm.apply_stats', '');
SELECT pg_catalog.pg_extension_config_dump('ivm.internal_seq', '');

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

-- Row trigger for the changes of a subscription's apply worker (ENABLE REPLICA).
CREATE FUNCTION ivm.capture_row() RETURNS trigger
AS 'MODULE_PATHNAME', 'ivm_capture_row' LANGUAGE C;

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

-- Each existing view: its pg_depend entries (the DDL guards), the parse tree of its
-- definition, its state handed to its owner, replica identity for streaming.
CREATE FUNCTION ivm.upgrade_view(view regclass) RETURNS void
AS 'MODULE_PATHNAME', 'ivm_upgrade_view' LANGUAGE C STRICT;
SELECT ivm.upgrade_view(viewid) FROM ivm.views ORDER BY level, viewid::oid;
DROP FUNCTION ivm.upgrade_view(regclass);
ALTER TABLE ivm.views ALTER COLUMN querytree SET NOT NULL;

-- Delta tables: owned by ivm, vacuumed as soon as autovacuum looks.
DO $$
DECLARE
    t record;
    owner name := (SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_catalog.pg_class
                   WHERE oid = 'ivm.views'::pg_catalog.regclass);
BEGIN
    FOR t IN SELECT name FROM ivm.delta_tables ORDER BY relid::oid LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO %I', t.name, owner);
        EXECUTE pg_catalog.format('ALTER TABLE %s SET (autovacuum_vacuum_scale_factor = 0, '
            'autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_insert_scale_factor = 0, '
            'autovacuum_vacuum_cost_delay = 0)', t.name);
    END LOOP;
END
$$;

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

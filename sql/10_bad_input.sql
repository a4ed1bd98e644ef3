-- 10_bad_input: ivm.create_view fed unsupported and malformed input (cases 05_refusals does
-- not already cover).  Every one must fail with its own clear message and the right SQLSTATE
-- (CALL try() in 00_setup prints "SQLSTATE: message", DETAIL and HINT), and leave the
-- database as it was: ivm's catalog, pg_depend, ivm_state, triggers, the schema's relations
-- (checked at the end, with ivm_leftovers()).  Some fail only while the view is being filled,
-- after its table, state and triggers were made: those must roll back too.
CREATE SCHEMA bad;
SET search_path = bad, public;

CREATE TABLE t (id int PRIMARY KEY, g text, x int, ts timestamptz, j json);
INSERT INTO t VALUES (1, 'a', 1, '2026-01-01', '{}'), (2, 'b', 2, '2026-01-02', '[]');
CREATE TABLE u (id int PRIMARY KEY, t_id int, w text);
INSERT INTO u VALUES (1, 1, 'x');
CREATE SEQUENCE seq;
CREATE TABLE parent (id int);
CREATE TABLE child () INHERITS (parent);
CREATE TABLE ranges (k int) PARTITION BY RANGE (k);
CREATE TABLE ranges_1 PARTITION OF ranges FOR VALUES FROM (0) TO (100);
CREATE UNLOGGED TABLE ul (k int);
-- A foreign table needs no foreign data wrapper extension: a wrapper without handler will do.
CREATE FOREIGN DATA WRAPPER bad_fdw;
CREATE SERVER bad_server FOREIGN DATA WRAPPER bad_fdw;
CREATE FOREIGN TABLE ft (k int) SERVER bad_server;
CREATE VIEW ft_view AS SELECT k FROM ft;
CREATE VIEW volatile_view AS SELECT id, random() AS r FROM t;
CREATE FUNCTION volatile_fn(int) RETURNS int LANGUAGE sql AS 'SELECT $1 + 1';
SELECT ivm.create_view('ok', 'SELECT id, g, x FROM t');

CREATE TEMP TABLE before AS
SELECT (SELECT count(*) FROM ivm.views) AS views,
       (SELECT count(*) FROM ivm.dependencies) AS dependencies,
       (SELECT count(*) FROM ivm.delta_tables) AS delta_tables,
       (SELECT count(*) FROM pg_class WHERE relnamespace = 'ivm_state'::regnamespace) AS state_relations,
       (SELECT count(*) FROM pg_class WHERE relnamespace = 'bad'::regnamespace) AS relations,
       (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal) AS triggers,
       (SELECT count(*) FROM pg_depend WHERE classid = 'pg_class'::regclass
          AND refclassid IN ('pg_class'::regclass, 'pg_extension'::regclass)) AS depends;

-- Window functions where 05 has none: in ORDER BY only, inside a subquery in FROM.
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM t ORDER BY row_number() OVER ()')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT s.r FROM (SELECT rank() OVER (ORDER BY x) AS r FROM t) s')$$);
-- ORDER BY with LIMIT, WITH TIES.
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM t ORDER BY x LIMIT 5')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM t ORDER BY x FETCH FIRST 1 ROW WITH TIES')$$);
-- UNION inside a subquery in FROM.
CALL try($$SELECT ivm.create_view('r', 'SELECT s.id FROM (SELECT id FROM t UNION ALL SELECT t_id FROM u) s')$$);
-- Sublinks: ALL, ARRAY(), in a join condition.
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM t WHERE x > ALL (SELECT t_id FROM u)')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id, ARRAY(SELECT w FROM u WHERE u.t_id = t.id) AS ws FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT t.id FROM t JOIN u ON u.t_id = t.id AND EXISTS (SELECT 1 FROM u u2)')$$);
-- LATERAL: a LEFT JOIN LATERAL subquery, a lateral function.
CALL try($$SELECT ivm.create_view('r', 'SELECT t.id, s.n FROM t LEFT JOIN LATERAL (SELECT count(*) AS n FROM u WHERE u.t_id = t.id) s ON true')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT t.id, g.i FROM t, LATERAL generate_series(1, t.x) g(i)')$$);
-- Functions that are not immutable, wherever they hide.
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM t WHERE ts > now() - interval ''1 day''')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id, clock_timestamp() AS at FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT g, sum(x * random()) AS s FROM t GROUP BY g')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT count(*) AS n FROM t GROUP BY random() > 0.5')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT t.id FROM t JOIN u ON u.t_id = t.id AND random() < 0.5')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT g, count(*) AS n FROM t GROUP BY g HAVING random() > 0.1')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id, gen_random_uuid() AS u FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id, txid_current() AS tx FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id, currval(''bad.seq'') AS c FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id, LOCALTIMESTAMP AS at FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id, current_setting(''work_mem'') AS wm FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id, g::regclass AS r FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id, ts::date AS d FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id, ts + interval ''1 day'' AS due FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id, volatile_fn(x) AS v FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id, r FROM volatile_view')$$);
-- System columns: tableoid, one in WHERE of the second table.
CALL try($$SELECT ivm.create_view('r', 'SELECT id, tableoid FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT t.id FROM t JOIN u ON u.t_id = t.id WHERE u.xmax = 0')$$);
-- Relations whose changes ivm cannot see: a foreign table (also behind a plain view),
-- inheritance (a parent, even FROM ONLY, and a child), a partition, an unlogged table, a
-- sequence, a view of information_schema, another database.
CALL try($$SELECT ivm.create_view('r', 'SELECT k FROM ft')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT k FROM ft_view')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM parent')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM ONLY parent')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM child')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT k FROM ranges_1')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT k FROM ul')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT last_value FROM seq')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT table_name FROM information_schema.tables')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM elsewhere.bad.t')$$);
-- Not a SELECT, or not one: UPDATE, VALUES, EXPLAIN, DO, a SELECT followed by a DROP (nothing
-- runs: t is still there below), a comment only.
CALL try($$SELECT ivm.create_view('r', 'UPDATE t SET x = 1')$$);
CALL try($$SELECT ivm.create_view('r', 'VALUES (1), (2)')$$);
CALL try($$SELECT ivm.create_view('r', 'EXPLAIN SELECT id FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'DO $do$ BEGIN END $do$')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM t; DROP TABLE t')$$);
CALL try($$SELECT ivm.create_view('r', '-- nothing but a comment')$$);
-- Malformed or meaningless queries: a parameter, an unterminated literal, an empty grouping
-- set, grouping errors, type errors, ambiguity, unknown functions, a ROW() column, a column
-- of json[] (no equality), the view reading itself.
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM t WHERE id = $1')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT ''unterminated FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT count(*) AS n FROM t GROUP BY ()')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT g, x FROM t GROUP BY g')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM t WHERE count(*) > 1')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id + ''abc'' AS s FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM t JOIN u ON true')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT no_such_function(id) FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT ROW(id, g) AS r FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id, ARRAY[j] AS js FROM t')$$);
CALL try($$SELECT ivm.create_view('selfref', 'SELECT id FROM selfref')$$);
-- Errors that only show while the view is filled: its table, state and triggers exist by
-- then, and must go with the failed statement.
CALL try($$SELECT ivm.create_view('r', 'SELECT id, 100 / (x - x) AS boom FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT g, count(*) AS n FROM t WHERE g ~ ''['' GROUP BY g')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT s.x, s.n FROM (SELECT x, count(*) AS n FROM t GROUP BY x) s WHERE s.n / (s.x - s.x) > 0')$$);
-- Names: temporary, ivm's own schemas, taken by an ivm view or a sequence, not a name, a
-- system schema; modes that are not quite right.
CALL try($$SELECT ivm.create_view('pg_temp.r', 'SELECT id FROM t')$$);
CALL try($$SELECT ivm.create_view('ivm_state.mine', 'SELECT id FROM t')$$);
CALL try($$SELECT ivm.create_view('ivm.mine', 'SELECT id FROM t')$$);
CALL try($$SELECT ivm.create_view('ok', 'SELECT id FROM t')$$);
CALL try($$SELECT ivm.create_view('seq', 'SELECT id FROM t')$$);
CALL try($$SELECT ivm.create_view('r; DROP TABLE t', 'SELECT id FROM t')$$);
CALL try($$SELECT ivm.create_view('pg_catalog.r', 'SELECT id FROM t')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM t', 'Immediate')$$);
CALL try($$SELECT ivm.create_view('r', 'SELECT id FROM t', '')$$);
-- A role without the privileges: to create in the schema, to have the table it reads
-- maintained (TRIGGER: the view's maintenance runs with every change to the table).
CREATE ROLE regress_ivm_bad_input;
GRANT USAGE ON SCHEMA ivm, bad TO regress_ivm_bad_input;
GRANT SELECT, TRIGGER ON t TO regress_ivm_bad_input;
SET ROLE regress_ivm_bad_input;
CALL try($$SELECT ivm.create_view('bad.r', 'SELECT id FROM t')$$);
RESET ROLE;
GRANT CREATE ON SCHEMA bad TO regress_ivm_bad_input;
REVOKE TRIGGER ON t FROM regress_ivm_bad_input;
SET ROLE regress_ivm_bad_input;
CALL try($$SELECT ivm.create_view('bad.r', 'SELECT id, g FROM t')$$);
RESET ROLE;
-- The other functions, given what is not an incremental view or not a mode.
CALL try($$SELECT ivm.set_mode('ok', 'bogus')$$);
CALL try($$SELECT ivm.set_mode('ok', 'wal')$$);
CALL try($$SELECT ivm.set_mode('nosuch', 'deferred')$$);
CALL try($$SELECT ivm.apply_deltas('t')$$);
CALL try($$SELECT ivm.drop_view('a.b.c.d')$$);
CALL try($$SELECT ivm.refresh('pg_class')$$);
CALL try($$SELECT ivm.verify('')$$);

-- Nothing was left behind, and what was there still works.
SELECT (SELECT count(*) FROM ivm.views) - views AS new_views,
       (SELECT count(*) FROM ivm.dependencies) - dependencies AS new_dependencies,
       (SELECT count(*) FROM ivm.delta_tables) - delta_tables AS new_delta_tables,
       (SELECT count(*) FROM pg_class WHERE relnamespace = 'ivm_state'::regnamespace) - state_relations AS new_state_relations,
       (SELECT count(*) FROM pg_class WHERE relnamespace = 'bad'::regnamespace) - relations AS new_relations,
       (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal) - triggers AS new_triggers,
       (SELECT count(*) FROM pg_depend WHERE classid = 'pg_class'::regclass
          AND refclassid IN ('pg_class'::regclass, 'pg_extension'::regclass)) - depends AS new_depends,
       ivm_leftovers()
FROM before;
SELECT count(*) AS rows_of_t, to_regclass('bad.r') AS r, to_regclass('bad.selfref') AS selfref FROM t;
SELECT mode FROM ivm.views WHERE name = 'bad.ok';
INSERT INTO t VALUES (3, 'c', 3, '2026-01-03', 'null');
SELECT ivm.verify('ok');

\set VERBOSITY terse
DROP TABLE ok;
DROP SCHEMA bad CASCADE;
DROP SERVER bad_server;
DROP FOREIGN DATA WRAPPER bad_fdw;
REVOKE USAGE ON SCHEMA ivm FROM regress_ivm_bad_input;
DROP ROLE regress_ivm_bad_input;
\set VERBOSITY default
SELECT ivm_leftovers();
RESET search_path;

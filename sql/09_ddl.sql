-- 09_ddl: DDL around incremental views.
--  1. DROP TABLE of a table a view reads is refused with a hint naming the views (in the
--     order they can be dropped); with CASCADE the views go too, views over them included.
--  2. ALTER TABLE of a base table: dropping, retyping or renaming a column a view reads is
--     refused with a hint; DROP COLUMN ... CASCADE drops the views reading it; any other
--     ALTER (add/drop/rename/retype an unused column, indexes, constraints) just works and
--     the views stay maintained.
--  3. Renaming or moving a base table, a view table or a schema keeps the views maintained
--     (immediate and deferred), with the new names in ivm.views.
--  4. The columns of a view table cannot change; ivm's triggers cannot be dropped, renamed
--     or disabled; no inheritance or partitioning of tables views read; no SET UNLOGGED;
--     a view's state tables go with it and never alone.
--  5. DROP TABLE of a view table, DROP SCHEMA ... CASCADE, DROP EXTENSION ivm [CASCADE]
--     leave nothing behind (ivm_leftovers() in 00_setup lists any orphan).
CREATE SCHEMA ddl;
SET search_path = ddl, public;
\set VERBOSITY terse
CREATE TABLE t (k int, v int);
CREATE TABLE u (k int);
SELECT ivm.create_view('a', 'SELECT k, sum(v) AS s FROM t GROUP BY k');
SELECT ivm.create_view('b', 'SELECT a.k, a.s FROM a JOIN u USING (k)');
\set VERBOSITY default

-- 1. DROP TABLE.
CALL try('DROP TABLE t');
CALL try('DROP TABLE a');
CALL try('DROP TABLE u, t');
-- A rolled-back DROP TABLE ... CASCADE changes nothing.
BEGIN;
DROP TABLE t CASCADE;
SELECT count(*) AS views_in_transaction FROM ivm.views WHERE name LIKE 'ddl.%';
ROLLBACK;
INSERT INTO t VALUES (1, 1);
INSERT INTO u VALUES (1);
SELECT ivm.verify('a') AS a, ivm.verify('b') AS b, ivm_leftovers();
-- Dropping a view and the tables it reads in one command is fine.
\set VERBOSITY terse
DROP TABLE b, u;
SELECT viewid::regclass FROM ivm.views WHERE name LIKE 'ddl.%' ORDER BY 1;
INSERT INTO t VALUES (1, 1);
SELECT ivm.verify('a');
DROP TABLE a;
SELECT count(*) AS views_left FROM ivm.views WHERE name LIKE 'ddl.%';
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 't'::regclass;
INSERT INTO t VALUES (2, 2);
DROP TABLE t;
SELECT ivm_leftovers();

-- CASCADE drops the views reading the table, views over them and internal views of
-- subqueries; another view's base table keeps its triggers.
CREATE TABLE orders (id int, cust int, amount numeric, note text);
CREATE TABLE customers (cust int, name text);
INSERT INTO orders SELECT g, g % 5, g * 1.5, 'n' || g FROM generate_series(1, 50) g;
INSERT INTO customers SELECT g, 'c' || g FROM generate_series(0, 6) g;
SELECT mk('totals', 'SELECT cust, sum(amount) AS total, count(*) AS n FROM orders GROUP BY cust');
SELECT ivm.create_view('named', 'SELECT c.name, t.total FROM customers c JOIN totals t USING (cust)');
SELECT mk('maxes', 'SELECT m.cust, m.top FROM (SELECT cust, max(id) AS top FROM orders GROUP BY cust) m');
SELECT mk('names', 'SELECT cust, upper(name) AS up FROM customers');
DROP TABLE orders CASCADE;
SELECT name FROM ivm.views WHERE name LIKE 'ddl.%' ORDER BY 1;
SELECT relname FROM pg_class WHERE relnamespace = 'ddl'::regnamespace AND relkind = 'r' ORDER BY 1;
INSERT INTO customers VALUES (7, 'g');
SELECT chk('names'), ivm_leftovers();

-- 2. ALTER TABLE on a base table.
CREATE TABLE orders (id int, cust int, amount numeric, note text, spare int);
INSERT INTO orders SELECT g, g % 5, g * 1.5, 'n' || g, g FROM generate_series(1, 50) g;
SELECT mk('totals', 'SELECT cust, sum(amount) AS total, count(*) AS n FROM orders GROUP BY cust');
SELECT mk('maxes', 'SELECT m.cust, m.top FROM (SELECT cust, max(id) AS top FROM orders GROUP BY cust) m');
SELECT mk('listing', 'SELECT o.id, o.amount, c.name FROM orders o JOIN customers c ON c.cust = o.cust WHERE o.note <> ''x''');
\set VERBOSITY default
CALL try('ALTER TABLE orders DROP COLUMN amount');
CALL try('ALTER TABLE orders DROP COLUMN id');
CALL try('ALTER TABLE orders ALTER COLUMN amount TYPE float8');
CALL try('ALTER TABLE orders ALTER COLUMN cust TYPE bigint');
CALL try('ALTER TABLE orders RENAME COLUMN amount TO amt');
CALL try('ALTER TABLE orders RENAME note TO remark');
CALL try('ALTER TABLE customers RENAME COLUMN name TO full_name');
-- Several subcommands: one that would break a view refuses the whole statement.
CALL try('ALTER TABLE orders ADD COLUMN extra int, DROP COLUMN note');
\set VERBOSITY terse
SELECT attname FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
-- ALTERs no view notices.
ALTER TABLE orders ADD COLUMN extra int DEFAULT 7;
ALTER TABLE orders ALTER COLUMN spare TYPE bigint;
ALTER TABLE orders RENAME COLUMN spare TO spare2;
CREATE INDEX ON orders (cust);
ALTER TABLE orders ADD CONSTRAINT positive CHECK (amount >= 0);
ALTER TABLE orders ALTER COLUMN cust SET NOT NULL;
ALTER TABLE orders ALTER COLUMN amount SET DEFAULT 0;
INSERT INTO orders (id, cust, amount, note) VALUES (100, 1, 10, 'new'), (101, 2, 20, 'new');
UPDATE orders SET amount = amount + 1, extra = 8 WHERE id % 7 = 0;
DELETE FROM orders WHERE id % 11 = 0;
ALTER TABLE orders DROP COLUMN spare2, DROP COLUMN extra;
INSERT INTO orders (id, cust, amount, note) VALUES (102, 3, 30, 'x');
UPDATE orders SET cust = 4 WHERE id = 100;
SELECT chk_all(), ivm_leftovers();
-- DROP COLUMN ... CASCADE drops the views reading that column, and only those.
ALTER TABLE orders DROP COLUMN note CASCADE;
SELECT name FROM ivm.views WHERE name LIKE 'ddl.%' ORDER BY 1;
INSERT INTO orders VALUES (103, 1, 5);
SELECT chk_all(), ivm_leftovers();

-- 3. Renames and moves keep the views maintained: immediate and deferred, a base table, a
-- view table (read by another view), a schema.
SELECT ivm.create_view('late', 'SELECT cust, count(*) AS n, sum(amount) AS s FROM orders GROUP BY cust', 'deferred');
SELECT ivm.create_view('top', 'SELECT cust, total FROM totals WHERE n > 8');
INSERT INTO orders VALUES (104, 2, 6);
ALTER TABLE orders RENAME TO orders2;
INSERT INTO orders2 VALUES (105, 2, 7);
UPDATE orders2 SET amount = amount * 2 WHERE id % 5 = 0;
SELECT ivm.apply_deltas('late') > 0 AS applied;
CREATE SCHEMA ddl_other;
ALTER TABLE orders2 SET SCHEMA ddl_other;
DELETE FROM ddl_other.orders2 WHERE id % 4 = 0;
ALTER TABLE totals RENAME TO totals2;
ALTER VIEW o_totals RENAME TO o_totals2;
INSERT INTO ddl_other.orders2 VALUES (106, 3, 8), (107, 0, 9);
ALTER SCHEMA ddl_other RENAME TO ddl_moved;
UPDATE ddl_moved.orders2 SET cust = (cust + 1) % 5 WHERE id % 3 = 0;
ALTER TABLE top SET SCHEMA ddl_moved;
INSERT INTO ddl_moved.orders2 VALUES (108, 1, 10);
SELECT ivm.apply_deltas('late') > 0 AS applied;
-- The oracles are plain views: PostgreSQL follows the renames by itself.
SELECT v.name, ivm.verify(v.name) FROM ivm.views v WHERE NOT v.internal AND v.name ~ '^ddl' ORDER BY 1;
SELECT * FROM chk('totals2') c, (SELECT count(*) AS diff_maxes FROM
    ((TABLE maxes EXCEPT ALL TABLE o_maxes) UNION ALL (TABLE o_maxes EXCEPT ALL TABLE maxes)) d) m;
-- The stored names follow, in the definitions of the views and of the internal view of
-- maxes' subquery; the query as written stays as written.
SELECT regexp_replace(v.name, 'sq_[0-9]+', 'sq_N') AS name, regexp_replace(v.definition, 'sq_[0-9]+', 'sq_N') AS definition
FROM ivm.views v WHERE v.name ~ '^ddl' OR v.parent = 'ddl.maxes'::regclass ORDER BY v.name COLLATE "C";
SELECT query FROM ivm.views WHERE name = 'ddl.totals2';
SELECT ivm.explain('ddl_moved.top') ~ 'Scan ddl.totals2 l1' AS explain_follows;
SELECT ivm_leftovers();

-- 4. View tables, ivm's triggers, inheritance, unlogged, state tables.
\set VERBOSITY default
CALL try('ALTER TABLE totals2 ADD COLUMN x int');
CALL try('ALTER TABLE totals2 DROP COLUMN n');
CALL try('ALTER TABLE totals2 ALTER COLUMN n TYPE numeric');
CALL try('ALTER TABLE totals2 RENAME COLUMN total TO sum_total');
CALL try('ALTER TABLE totals2 ALTER COLUMN cust ADD GENERATED ALWAYS AS IDENTITY');
CALL try('ALTER TABLE totals2 SET UNLOGGED');
CALL try('ALTER TABLE ddl_moved.orders2 SET UNLOGGED');
CALL try('DROP TRIGGER ivm_capture_ins ON ddl_moved.orders2');
CALL try('DROP TRIGGER ivm_guard ON totals2');
CALL try('ALTER TRIGGER ivm_capture_upd ON ddl_moved.orders2 RENAME TO mine');
CALL try('ALTER TABLE ddl_moved.orders2 DISABLE TRIGGER ivm_capture_del');
CALL try('CREATE TABLE orders_child () INHERITS (ddl_moved.orders2)');
CREATE TABLE parent_table (id int, cust int, amount numeric);
CALL try('ALTER TABLE ddl_moved.orders2 INHERIT parent_table');
CALL try('ALTER TABLE totals2 INHERIT parent_table');
CREATE TABLE ranges (id int, cust int, amount numeric) PARTITION BY RANGE (id);
CALL try('ALTER TABLE ranges ATTACH PARTITION ddl_moved.orders2 FOR VALUES FROM (0) TO (1000)');
-- (The state table's name holds an oid: printed as N.)
DO $$
BEGIN
    EXECUTE format('DROP TABLE ivm_state.s_%s', 'ddl.totals2'::regclass::oid);
    RAISE NOTICE 'dropped';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE '%: %', SQLSTATE, regexp_replace(SQLERRM, 's_[0-9]+', 's_N');
END
$$;
-- Disabling every trigger of a base table is allowed (bulk loads), with a warning.
ALTER TABLE customers DISABLE TRIGGER ALL;
ALTER TABLE customers ENABLE TRIGGER ALL;
\set VERBOSITY terse
-- Other DDL on a view table is fine.
CREATE INDEX ON totals2 (total);
ALTER TABLE totals2 ADD PRIMARY KEY (cust);
ALTER TABLE totals2 ALTER COLUMN total SET STATISTICS 500;
INSERT INTO ddl_moved.orders2 VALUES (109, 4, 11);
SELECT ivm.verify('totals2') AS totals2, ivm.verify('ddl_moved.top') AS top, ivm_leftovers();

-- 5. Dropping view tables, schemas, the extension: nothing left behind.
-- A view table dropped directly: its state, and the triggers on its base tables once no
-- other view reads them.
DROP TABLE names;
SELECT ivm_leftovers();
DROP TABLE ddl_moved.top, totals2, late, maxes;
SELECT count(*) AS views_left FROM ivm.views WHERE name ~ '^ddl';
SELECT count(*) AS ivm_triggers_left FROM pg_trigger WHERE tgrelid IN ('customers'::regclass, 'ddl_moved.orders2'::regclass);
SELECT ivm_leftovers();
DROP VIEW o_totals2, o_maxes, o_names;
-- DROP SCHEMA ... CASCADE: of the base tables (views in another schema go too), of the
-- views only (the base tables elsewhere lose their triggers), of both.
CREATE SCHEMA ddl_base;
CREATE SCHEMA ddl_views;
CREATE TABLE ddl_base.t1 (k int, v int);
CREATE TABLE ddl_base.t2 (k int, w int);
INSERT INTO ddl_base.t1 VALUES (1, 1), (2, 2);
INSERT INTO ddl_base.t2 VALUES (1, 10);
SELECT ivm.create_view('ddl_views.j', 'SELECT t1.k, t1.v, t2.w FROM ddl_base.t1 JOIN ddl_base.t2 USING (k)');
SELECT ivm.create_view('ddl_views.g', 'SELECT k, count(*) AS n FROM ddl_base.t1 GROUP BY k', 'deferred');
SELECT ivm.create_view('ddl_views.gg', 'SELECT n, count(*) AS c FROM ddl_views.g GROUP BY n');
SELECT ivm.create_view('ddl.other', 'SELECT k FROM ddl_base.t2 WHERE w > 0');
DROP SCHEMA ddl_views CASCADE;
SELECT name FROM ivm.views WHERE name ~ '^ddl' ORDER BY 1;
SELECT tgrelid::regclass, count(*) FROM pg_trigger
WHERE tgrelid IN ('ddl_base.t1'::regclass, 'ddl_base.t2'::regclass) GROUP BY 1 ORDER BY 1;
SELECT (SELECT count(*) FROM ivm.delta_tables WHERE relid = 'ddl_base.t1'::regclass) AS delta_tables, ivm_leftovers();
SELECT ivm.create_view('ddl_views2', 'SELECT k, v FROM ddl_base.t1');
DROP SCHEMA ddl_base CASCADE;
SELECT count(*) AS views_left FROM ivm.views WHERE name ~ '^ddl';
SELECT ivm_leftovers();
CREATE SCHEMA ddl_both;
CREATE TABLE ddl_both.t (k int);
SELECT ivm.create_view('ddl_both.v', 'SELECT k, count(*) AS n FROM ddl_both.t GROUP BY k');
SELECT ivm.create_view('ddl_both.w', 'SELECT n FROM ddl_both.v');
DROP SCHEMA ddl_both CASCADE;
SELECT (SELECT count(*) FROM ivm.views WHERE name ~ '^ddl') AS views_left, ivm_leftovers();

-- DROP EXTENSION, in a database of its own (the other tests' views live in this one).
\set regress_db :DBNAME
CREATE DATABASE ivm_ddl_extension;
\c ivm_ddl_extension
\set VERBOSITY terse
CREATE EXTENSION ivm;
CREATE TABLE t (k int, v int);
CREATE TABLE keep (k int);
INSERT INTO t VALUES (1, 1), (1, 2), (2, 3);
SELECT ivm.create_view('v', 'SELECT k, sum(v) AS s FROM t GROUP BY k');
SELECT ivm.create_view('vv', 'SELECT s FROM v WHERE s > 0');
SELECT ivm.create_view('d', 'SELECT k, count(*) AS n FROM (SELECT DISTINCT k, v FROM t) x GROUP BY k', 'deferred');
\set VERBOSITY default
DROP EXTENSION ivm;
\set VERBOSITY terse
DROP EXTENSION ivm CASCADE;
SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1;
SELECT count(*) AS triggers FROM pg_trigger WHERE NOT tgisinternal;
SELECT nspname FROM pg_namespace WHERE nspname = 'ivm_state';
INSERT INTO t VALUES (3, 3);
-- Without views, DROP EXTENSION needs no CASCADE; the extension can come back.
CREATE EXTENSION ivm;
SELECT ivm.create_view('v', 'SELECT k, sum(v) AS s FROM t GROUP BY k');
SELECT ivm.drop_view('v');
DROP EXTENSION ivm;
CREATE EXTENSION ivm;
SELECT ivm.create_view('v', 'SELECT k, sum(v) AS s FROM t GROUP BY k');
INSERT INTO t VALUES (4, 4);
SELECT ivm.verify('v');
\c :regress_db
DROP DATABASE ivm_ddl_extension;
SET search_path = ddl, public;
DROP TABLE customers, parent_table, ranges, ddl_moved.orders2;
DROP SCHEMA ddl_moved;
SELECT ivm_leftovers();
RESET search_path;

-- 15_fill: how create_view and refresh fill a view.  The view's query gives, per group, the
-- state row and the view row together, written in batches below SQL into plain tables; into a
-- view table with users' triggers, rules or row security the INSERT statements run instead.
-- Either way the view must equal its query (ivm.verify: rows differing from it), its state
-- must carry on maintaining it, and ivm.maintenance_paths() says which way each fill went.
CREATE SCHEMA fl;
SET search_path = fl, public;
\set VERBOSITY terse

SELECT took('view filled%');

-- Typed columns (a varchar(8) group, numeric(8,2) values), NULL groups and values, groups
-- HAVING hides, an average, counted extremes.
CREATE TABLE t (id int PRIMARY KEY, g varchar(8), v numeric(8,2), n int, ts timestamptz);
INSERT INTO t SELECT k, CASE WHEN k % 7 = 0 THEN NULL ELSE 'g' || (k % 5) END,
       CASE WHEN k % 11 = 0 THEN NULL ELSE k / 4.0 END, k % 13,
       '2026-01-01'::timestamptz + k * interval '1 hour'
FROM generate_series(1, 3000) k;
CREATE VIEW t_having_q AS
    SELECT g, count(*) AS c, sum(v) AS s, avg(v) AS a, min(n) AS lo, max(ts) AS hi
    FROM t GROUP BY g HAVING sum(n) > 1100;
CREATE VIEW t_global_q AS SELECT count(*) AS c, sum(v) AS s, max(n) AS hi FROM t WHERE id < 0;
CREATE VIEW t_rows_q AS SELECT id, g, v FROM t WHERE n < 3;

SELECT ivm.create_view('t_having', 'SELECT g, count(*) AS c, sum(v) AS s, avg(v) AS a, min(n) AS lo, max(ts) AS hi
                                     FROM t GROUP BY g HAVING sum(n) > 1100');
SELECT ivm.create_view('t_global', 'SELECT count(*) AS c, sum(v) AS s, max(n) AS hi FROM t WHERE id < 0');
SELECT ivm.create_view('t_rows', 'SELECT id, g, v FROM t WHERE n < 3');
SELECT took('view filled%');
SELECT ivm.verify('t_having'), ivm.verify('t_global'), ivm.verify('t_rows');
-- HAVING hides some groups: they have state but no row, and show up when they qualify.
SELECT (SELECT count(*) FROM t_having) AS shown, (SELECT count(DISTINCT g) FROM t) + 1 AS groups;
SELECT * FROM t_global;
UPDATE t SET n = n + 13 WHERE g = 'g1' AND id % 2 = 0;
INSERT INTO t VALUES (-1, 'g1', 2.50, 12, '2027-01-01'), (-2, NULL, NULL, 0, NULL);
DELETE FROM t WHERE id IN (5, 10, 15);
SELECT ivm.verify('t_having'), ivm.verify('t_global'), ivm.verify('t_rows');
SELECT count(*) = (SELECT count(*) FROM t_having_q) FROM t_having;
SELECT * FROM t_global;

-- refresh fills the same way, into tables with indexes: a user's own unique index on the view
-- is maintained by the fill (an index scan finds every row afterwards).
CREATE UNIQUE INDEX t_rows_id ON t_rows (id);
SELECT ivm.refresh('t_having') >= 0, ivm.refresh('t_rows') >= 0;
SELECT took('view filled%');
SELECT ivm.verify('t_having'), ivm.verify('t_rows');
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) FROM t_rows r WHERE r.id = ANY (SELECT id FROM t WHERE n < 3);
RESET enable_seqscan;
RESET enable_bitmapscan;

-- A user's CHECK constraint on the view's table holds for the fill as for an INSERT (NOT
-- VALID: the rows there now are not checked, the refresh's are), and the refresh rolls back.
ALTER TABLE t_rows ADD CONSTRAINT small_ids CHECK (id < 2990) NOT VALID;
SELECT ivm.refresh('t_rows');
SELECT took('view filled%');
ALTER TABLE t_rows DROP CONSTRAINT small_ids;
SELECT (SELECT count(*) FROM t_rows) AS still_there, ivm.verify('t_rows');

-- A user's row trigger on the view's table: the fill takes the INSERT statement, which fires it.
CREATE TABLE fired (n int);
CREATE FUNCTION count_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO fl.fired VALUES (1); RETURN NEW; END $$;
CREATE TRIGGER user_trigger AFTER INSERT ON t_rows FOR EACH ROW EXECUTE FUNCTION count_rows();
SELECT ivm.refresh('t_rows') >= 0;
SELECT took('view filled%');
SELECT (SELECT count(*) FROM fired) = (SELECT count(*) FROM t_rows) AS fired_per_row, ivm.verify('t_rows');
DROP TRIGGER user_trigger ON t_rows;

-- Row security on the view's table: the statements again.
ALTER TABLE t_rows ENABLE ROW LEVEL SECURITY;
SELECT ivm.refresh('t_rows') >= 0;
SELECT took('view filled%');
ALTER TABLE t_rows DISABLE ROW LEVEL SECURITY;
SELECT ivm.verify('t_rows');

-- Values stored out of line (TOAST) and rows wider than a batch's byte budget: each row is
-- copied as it comes, its large values compressed or moved out of line on the way in.
CREATE TABLE w (id int PRIMARY KEY, g int, doc text);
INSERT INTO w SELECT k, k % 3, (SELECT string_agg(md5(k::text || i::text), '') FROM generate_series(1, 100 + k % 50) i)
FROM generate_series(1, 300) k;
SELECT ivm.create_view('w_rows', 'SELECT id, doc FROM w');
SELECT ivm.create_view('w_max', 'SELECT g, max(doc) AS top, count(*) AS n FROM w GROUP BY g');
SELECT took('view filled%');
SELECT ivm.verify('w_rows'), ivm.verify('w_max'), (SELECT sum(length(doc)) FROM w_rows) = (SELECT sum(length(doc)) FROM w);
SELECT pg_relation_size(reltoastrelid) > 0 AS toasted FROM pg_class WHERE oid = 'w_rows'::regclass;
UPDATE w SET doc = doc || 'x' WHERE id % 10 = 0;
DELETE FROM w WHERE id % 7 = 0;
SELECT ivm.verify('w_rows'), ivm.verify('w_max');

-- A fill that fails leaves nothing: the view is created whole or not at all.
CREATE TABLE z (k int, d int);
INSERT INTO z VALUES (1, 1), (2, 0);
SELECT ivm.create_view('z_div', 'SELECT k, 10 / d AS q FROM z');
SELECT count(*) FROM ivm.views WHERE name LIKE '%z_div%';
SELECT to_regclass('fl.z_div');
SELECT took('view filled%');

DROP SCHEMA fl CASCADE;
RESET search_path;

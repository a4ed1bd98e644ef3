-- 04_distinct_subqueries: SELECT DISTINCT, subqueries in FROM, plain views in FROM, and
-- ivm views over ivm views.  After every step chk_all() compares each ivm view with its
-- oracle o_<name> (a plain view; over other views it reads their oracles).
\set VERBOSITY terse
CREATE SCHEMA subq;
SET search_path = subq, public;

CREATE TABLE t (id int PRIMARY KEY, g text, x int);
CREATE TABLE cat (g text PRIMARY KEY, name text);
INSERT INTO t VALUES (1, 'a', 1), (2, 'a', 1), (3, 'a', 2), (4, 'b', 5), (5, NULL, 7), (6, 'c', NULL);
INSERT INTO cat VALUES ('a', 'Alpha'), ('b', 'Beta'), ('d', 'Delta');

-- DISTINCT: a row stays while any duplicate is left.
SELECT mk('d_pairs',  'SELECT DISTINCT g, x FROM t');
SELECT mk('d_groups', 'SELECT DISTINCT g FROM t WHERE x IS NOT NULL');
-- Subqueries in FROM, without and with aggregates, joined and filtered.
SELECT mk('s_plain',  'SELECT s.g, s.x2 FROM (SELECT g, x * 2 AS x2 FROM t WHERE x > 0) s WHERE s.x2 < 12');
SELECT mk('s_agg',    'SELECT s.g, s.total FROM (SELECT g, sum(x) AS total FROM t GROUP BY g) s WHERE s.total > 2');
SELECT mk('s_join',   'SELECT c.name, s.n FROM cat c LEFT JOIN (SELECT g, count(*) AS n FROM t GROUP BY g) s ON s.g = c.g');
SELECT mk('s_agg2',   'SELECT max(total) AS top, count(*) AS groups
                       FROM (SELECT g, sum(x) AS total FROM t GROUP BY g) s');
-- A plain PostgreSQL view in FROM.
CREATE VIEW pv AS SELECT g, x FROM t WHERE x IS NOT NULL;
SELECT mk('via_view', 'SELECT g, count(*) AS n, sum(x) AS sx FROM pv GROUP BY g');

-- Three levels of ivm views, and a global aggregate over an ivm view.
SELECT mk('lvl1', 'SELECT g, sum(x) AS total, count(*) AS n FROM t GROUP BY g');
SELECT ivm.create_view('lvl2', 'SELECT l.g, l.total, c.name FROM lvl1 l JOIN cat c ON c.g = l.g');
CREATE VIEW o_lvl2 AS SELECT l.g, l.total, c.name FROM o_lvl1 l JOIN cat c ON c.g = l.g;
SELECT ivm.create_view('lvl3', 'SELECT name, total * 10 AS total10 FROM lvl2 WHERE total > 1');
CREATE VIEW o_lvl3 AS SELECT name, total * 10 AS total10 FROM o_lvl2 WHERE total > 1;
SELECT ivm.create_view('over_lvl1', 'SELECT count(*) AS groups, sum(total) AS total, max(n) AS max_n FROM lvl1');
CREATE VIEW o_over_lvl1 AS SELECT count(*) AS groups, sum(total) AS total, max(n) AS max_n FROM o_lvl1;

-- How ivm stored them: levels, and subqueries in FROM as internal views (in ivm_state)
-- owned by the view that contains them.
SELECT CASE WHEN v.internal THEN '(internal view)' ELSE v.name END AS name, v.level, p.name AS parent
FROM ivm.views v LEFT JOIN ivm.views p ON p.viewid = v.parent
WHERE v.name LIKE 'subq.%' OR p.name LIKE 'subq.%'
ORDER BY v.level, v.internal, p.name, v.name;

SELECT chk_all();
TABLE d_pairs ORDER BY 1, 2;
TABLE d_groups ORDER BY 1;
TABLE s_plain ORDER BY 1, 2;
TABLE s_agg ORDER BY 1, 2;
TABLE s_join ORDER BY 1, 2;
TABLE s_agg2;
TABLE via_view ORDER BY 1;
TABLE lvl2 ORDER BY 1;
TABLE lvl3 ORDER BY 1;
TABLE over_lvl1;

-- 1. Duplicates go: one of the two (a, 1) rows leaves (the DISTINCT row stays), then the
--    other one (the row goes).
DELETE FROM t WHERE id = 1;
SELECT chk_all();
TABLE d_pairs ORDER BY 1, 2;
DELETE FROM t WHERE id = 2;
SELECT chk_all();
TABLE d_pairs ORDER BY 1, 2;

-- 2. Duplicates come: (b, 5) twice more, a new group d (which makes Delta appear in lvl2).
INSERT INTO t VALUES (7, 'b', 5), (8, 'b', 5), (9, 'd', 3);
SELECT chk_all();
TABLE d_pairs ORDER BY 1, 2;
TABLE s_join ORDER BY 1, 2;
TABLE lvl2 ORDER BY 1;
TABLE lvl3 ORDER BY 1;

-- 3. Updates that move rows between groups and across the filters of every level.
UPDATE t SET g = 'a' WHERE g = 'b';
UPDATE t SET x = NULL WHERE id = 3;
UPDATE cat SET name = 'Dee' WHERE g = 'd';
SELECT chk_all();
TABLE d_groups ORDER BY 1;
TABLE s_plain ORDER BY 1, 2;
TABLE s_agg ORDER BY 1, 2;
TABLE via_view ORDER BY 1;
TABLE lvl2 ORDER BY 1;
TABLE lvl3 ORDER BY 1;
TABLE over_lvl1;

-- 4. A transaction touching both base tables, rolled back, then committed.
BEGIN;
DELETE FROM cat;
INSERT INTO t VALUES (10, 'e', 100);
SELECT chk_all();
ROLLBACK;
SELECT chk_all();
BEGIN;
INSERT INTO cat VALUES ('c', 'Gamma');
UPDATE t SET x = 4 WHERE g = 'c';
COMMIT;
SELECT chk_all();
TABLE lvl2 ORDER BY 1;
TABLE lvl3 ORDER BY 1;
TABLE s_agg2;

-- 5. Everything emptied, then refilled.
TRUNCATE t;
SELECT chk_all();
TABLE over_lvl1;
TABLE s_agg2;
TABLE s_join ORDER BY 1, 2;
INSERT INTO t SELECT i, chr(97 + i % 4), i % 5 FROM generate_series(1, 40) i;
SELECT chk_all();
TABLE lvl3 ORDER BY 1;
TABLE over_lvl1;

-- 09_ddl: DROP TABLE around incremental views.  Dropping a table a view reads is refused
-- (naming the view); dropping a view table removes the view from ivm's catalog, with its
-- state tables and, once no view needs them, the capture triggers of its base tables.
CREATE SCHEMA ddl;
SET search_path = ddl, public;
\set VERBOSITY terse
CREATE TABLE t (k int, v int);
CREATE TABLE u (k int);
SELECT ivm.create_view('a', 'SELECT k, sum(v) AS s FROM t GROUP BY k');
SELECT ivm.create_view('b', 'SELECT a.k, a.s FROM a JOIN u USING (k)');
CALL try('DROP TABLE t');
CALL try('DROP TABLE a');
-- Dropping a view and the tables it reads in one command is fine.
DROP TABLE b, u;
SELECT viewid::regclass FROM ivm.views WHERE name LIKE 'ddl.%' ORDER BY 1;
INSERT INTO t VALUES (1, 1);
SELECT ivm.verify('a');
DROP TABLE a;
SELECT count(*) AS views_left FROM ivm.views WHERE name LIKE 'ddl.%';
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 't'::regclass;
INSERT INTO t VALUES (2, 2);
DROP TABLE t;
RESET search_path;

-- 14_state_merge: an aggregate view's state merged group by group below SQL.  Under READ
-- COMMITTED the per-group deltas come from a read-only statement (or, for counts, int8 and
-- numeric sums, bool_and / bool_or and extremes, are summed below SQL from the change's rows)
-- and each group's state row is locked, merged and finalized with the functions the SQL upsert
-- calls (the state type's "+", the type's btree order, int8 arithmetic, numeric and interval
-- division); a new group's state row is inserted as the upsert's ON CONFLICT inserts it, then
-- merged into.  Every state type and finalization the merge handles is here, with NULL group keys,
-- NULL measures, emptied groups (their state rows go), lost extremes (recomputed), ties,
-- savepoints, both ivm.immediate_apply settings and REPEATABLE READ, each step checked
-- against the plain view; then which path each change took (ivm.maintenance_paths).  (The numeric measures keep one scale: a numeric sum's display
-- scale after deletes is a known difference of either path, see README.)
CREATE SCHEMA sm;
SET search_path = sm, public;
\set VERBOSITY terse

CREATE TABLE m (id int PRIMARY KEY, g text, h int, i int, b bigint, x numeric, c money,
                d interval, ok boolean, t text, ts timestamp);
INSERT INTO m SELECT k, CASE WHEN k % 9 = 0 THEN NULL ELSE 'g' || (k % 3) END, k % 2,
                     CASE WHEN k % 5 = 0 THEN NULL ELSE k END, k * 1000000000000, (k / 8.0)::numeric(12, 4),
                     (k * 1.25)::money, k * interval '90 minutes', k % 4 <> 0,
                     CASE WHEN k % 7 = 0 THEN NULL ELSE chr(65 + k % 26) || k END,
                     timestamp '2026-01-01' + k * interval '1 day'
FROM generate_series(1, 60) k;

-- Sums of every state type (int4 -> int8, int8 -> numeric, numeric, money, interval), counts,
-- averages (int8 state, numeric state, interval), bool_and / bool_or, with two group columns.
SELECT mk('sums', 'SELECT g, h, count(*) AS n, count(i) AS ni, sum(i) AS si, sum(b) AS sb,
                          sum(x) AS sx, sum(c) AS sc, sum(d) AS sd, avg(i) AS ai, avg(x) AS ax,
                          avg(d) AS ad, bool_and(ok) AS all_ok, bool_or(ok) AS any_ok
                   FROM m GROUP BY g, h');
-- Extremes of an integer, of text in the "C" order, of timestamps; a FILTER.
SELECT mk('extremes', 'SELECT g, min(i) AS lo, max(i) AS hi, min(t COLLATE "C") AS tlo,
                              max(t) AS thi, max(ts) AS last, count(*) FILTER (WHERE ok) AS nok
                       FROM m GROUP BY g');
-- The measures of sums but money and interval: their deltas are summed below SQL too.
SELECT mk('folds', 'SELECT g, h, count(*) AS n, count(i) AS ni, sum(i) AS si, sum(b) AS sb, sum(x) AS sx,
                           avg(i) AS ai, avg(x) AS ax, bool_and(ok) AS all_ok, bool_or(ok) AS any_ok,
                           sum(i) FILTER (WHERE ok) AS si_ok, count(t) FILTER (WHERE h = 1) AS nt1
                    FROM m GROUP BY g, h');
-- Not merged below SQL (HAVING, an output expression over aggregates): the statements run.
SELECT mk('having', 'SELECT g, sum(i) AS si FROM m GROUP BY g HAVING count(*) > 10');
SELECT mk('ratio', 'SELECT g, sum(i) * 2 AS twice FROM m GROUP BY g');
SELECT position('merge the state rows' IN ivm.explain('sums')) > 0 AS sums_merged,
       position('merge the state rows' IN ivm.explain('extremes')) > 0 AS extremes_merged,
       position('merge the state rows' IN ivm.explain('having')) > 0 AS having_merged,
       position('merge the state rows' IN ivm.explain('ratio')) > 0 AS ratio_merged;
SELECT position('summed group by group' IN ivm.explain('folds')) > 0 AS folds_summed,
       position('summed group by group' IN ivm.explain('extremes')) > 0 AS extremes_summed,
       position('summed group by group' IN ivm.explain('sums')) > 0 AS sums_summed;

-- 1. Changes of existing groups: inserts, updates of measures, NULL measures.
INSERT INTO m VALUES (61, 'g1', 1, 61, 7, 0.5000, '$3.00', '1 hour', true, 'zz', '2027-01-01'),
                     (62, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
UPDATE m SET i = i + 100, x = -x, c = c * 2, d = -d, ok = NOT ok WHERE id % 6 = 1;
UPDATE m SET t = 'A0', ts = NULL WHERE id IN (3, 4);
SELECT chk_all();

-- 1b. Rows that cancel out within a change: an UPDATE changing nothing a view reads (each
-- row's old and new versions net to nothing), an extreme removed and added back by the same
-- statement (not lost: nothing to recompute), and, with the transaction's changes summed at
-- its end, two equal rows (one row of the change counted twice) changed twice.
UPDATE m SET ok = ok, t = t WHERE g = 'g0';
UPDATE m SET h = h WHERE i = (SELECT max(i) FROM m WHERE g = 'g2');
SET ivm.immediate_apply = 'transaction';
BEGIN;
INSERT INTO m VALUES (63, 'g1', 1, 7, 7, 7.25, '$7.00', '7 hours', true, 'd', '2026-05-05'),
                     (64, 'g1', 1, 7, 7, 7.25, '$7.00', '7 hours', true, 'd', '2026-05-05');
UPDATE m SET x = x + 1 WHERE id IN (63, 64);
UPDATE m SET x = x - 1, ok = false WHERE id IN (63, 64);
COMMIT;
RESET ivm.immediate_apply;
SELECT chk_all();
TABLE folds ORDER BY g, h;
-- Equal rows of a table without a key: summed at the transaction's end they are one row of
-- the change counted several times.
CREATE TABLE dup (g text, x numeric, i int);
SELECT mk('dups', 'SELECT g, count(*) AS n, sum(x) AS sx, sum(i) AS si, max(x) AS hi, min(i) AS lo,
                          count(x) FILTER (WHERE i > 1) AS n2
                   FROM dup GROUP BY g');
SET ivm.immediate_apply = 'transaction';
BEGIN;
INSERT INTO dup VALUES ('a', 1.5, 1), ('a', 1.5, 1), ('a', 2.5, 2), ('b', 1, 1);
INSERT INTO dup VALUES ('a', 1.5, 1);
UPDATE dup SET x = x * 2, i = 3 WHERE g = 'a' AND i = 1;
COMMIT;
BEGIN;
DELETE FROM dup WHERE x = 3;
INSERT INTO dup VALUES ('a', 4, 3), ('a', 4, 3), ('b', 1, 1);
COMMIT;
RESET ivm.immediate_apply;
SELECT chk_all();
TABLE dups ORDER BY g;

-- 2. A row moves to another group; a group loses its extremes (recomputed), ties kept.
UPDATE m SET g = 'g2' WHERE id = 61;
DELETE FROM m WHERE i = (SELECT max(i) FROM m WHERE g = 'g0');
UPDATE m SET i = (SELECT min(i) FROM m WHERE g = 'g1') WHERE id = 10;
DELETE FROM m WHERE id = (SELECT min(id) FROM m WHERE g = 'g1' AND i = (SELECT min(i) FROM m WHERE g = 'g1'));
SELECT chk_all();
TABLE extremes ORDER BY g;

-- 3. New groups (their state rows inserted, then merged into), then emptied ones: their view
-- rows and state rows go.
INSERT INTO m VALUES (70, 'new', 5, 1, 1, 1, '$1.00', '1 day', false, 'n', '2026-06-01'),
                     (71, 'new', 5, 2, 2, 2, '$2.00', '2 days', true, 'o', '2026-06-02');
INSERT INTO m VALUES (72, 'new', 5, 3, 3, 3, '$3.00', '3 days', true, 'p', '2026-06-03');
SELECT chk_all();
TABLE sums ORDER BY g, h;
DELETE FROM m WHERE g = 'new';
DELETE FROM m WHERE g IS NULL AND h = 1;
SELECT chk_all();
-- The state holds a row per group of the view, no more.
SELECT (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM ivm_state.s_%s',
                                                   'sums'::regclass::oid), false, true, '')))[1]::text::int
       = (SELECT count(*) FROM sums) AS state_rows_match;

-- 4. Savepoints: a merge rolled back to a savepoint is undone, the next one sees the state
-- as it was; then the same with the transaction's changes maintained at its end.
BEGIN;
UPDATE m SET i = i + 1 WHERE g = 'g1';
SAVEPOINT a;
UPDATE m SET i = i * 10, x = x + 1 WHERE g = 'g1';
DELETE FROM m WHERE g = 'g2' AND h = 0;
ROLLBACK TO a;
UPDATE m SET x = x + 2 WHERE g = 'g2';
COMMIT;
SELECT chk_all();
SET ivm.immediate_apply = 'transaction';
BEGIN;
INSERT INTO m VALUES (80, 'g0', 0, 5, 5, 5, '$5.00', '5 hours', true, 'q', '2026-07-01');
UPDATE m SET i = NULL, ok = NULL WHERE id = 80;
SAVEPOINT b;
DELETE FROM m WHERE g = 'g0';
ROLLBACK TO b;
UPDATE m SET g = 'g1' WHERE id = 80;
COMMIT;
RESET ivm.immediate_apply;
SELECT chk_all();

-- 5. REPEATABLE READ: the SQL upsert (its serialization failures are the statement's).
BEGIN ISOLATION LEVEL REPEATABLE READ;
UPDATE m SET b = b + 1, t = 'RR' WHERE id % 4 = 0;
COMMIT;
SELECT chk_all();
TABLE sums ORDER BY g, h;

-- 6. Which path ran (ivm.maintenance_paths(): this session's counts).  took(): the paths taken
-- since the previous call.  A view whose input did not change in a column it reads takes none.
SELECT took();
-- Only sums and folds read x: both merged, the deltas of sums (money, interval) by statement,
-- those of folds below SQL.
UPDATE m SET x = x + 1 WHERE id = 2;
SELECT took();
-- All five: three merged, two upserted; extremes loses g2's minimum (2): recomputed, and
-- written by the statement.
UPDATE m SET i = i + 1000 WHERE id = 2;
SELECT took();
-- A new group: merged as well (its state row inserted first), but for having and ratio.
INSERT INTO m VALUES (90, 'brand', 0, 1, 1, 1, '$1.00', '1 day', true, 'b', '2026-08-01');
SELECT took();
BEGIN ISOLATION LEVEL REPEATABLE READ;
UPDATE m SET i = i + 1 WHERE id = 90;
COMMIT;
SELECT took();                                      -- the statements, for state and view
SELECT chk_all();
DROP SCHEMA sm CASCADE;
RESET search_path;
SELECT ivm_leftovers();

-- 13_view_writes: how maintenance writes an aggregate view's table.  Under READ COMMITTED,
-- when nothing on the view's table asks for an SQL statement, each changed group's row is
-- found by the view's group index and updated, inserted or deleted in place; otherwise
-- (a user's trigger, a domain-typed column, REPEATABLE READ) the SQL statement writes it.
-- Either way the view stays exact, the indexes users add to it stay right, the unique
-- ones are enforced, users' triggers see every row change, and savepoints undo writes.
CREATE SCHEMA vw;
SET search_path = vw, public;
\set VERBOSITY terse

CREATE TABLE sale (id int PRIMARY KEY, region text, product text, qty int, price numeric);
INSERT INTO sale SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'r' || (g % 5) END, 'p' || (g % 3),
                        g % 11, g / 4.0
FROM generate_series(1, 200) g;
SELECT mk('by_region', 'SELECT region, product, count(*) AS n, sum(qty) AS qty, avg(price) AS price,
                               max(price) AS top FROM sale GROUP BY region, product');
SELECT mk('big_regions', 'SELECT region, count(*) AS n FROM sale GROUP BY region HAVING count(*) > 25');
SELECT mk('regions', 'SELECT DISTINCT region FROM sale');

-- via_index(q): the rows of query q read with sequential and bitmap scans off (through the
-- view's indexes, as section 1's EXPLAIN shows), and how many of them differ (EXCEPT ALL both
-- ways) from the same query read as the planner likes.
CREATE FUNCTION via_index(q text, OUT via_index bigint, OUT differ bigint) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true);
    EXECUTE 'CREATE TEMP TABLE vw_via_index AS ' || q;
    PERFORM set_config('enable_seqscan', 'on', true), set_config('enable_bitmapscan', 'on', true);
    EXECUTE format('SELECT (SELECT count(*) FROM vw_via_index),
                           (SELECT count(*) FROM (TABLE vw_via_index EXCEPT ALL (%1$s)) a) +
                           (SELECT count(*) FROM ((%1$s) EXCEPT ALL TABLE vw_via_index) b)', q)
        INTO via_index, differ;
    DROP TABLE vw_via_index;
END $$;

-- changes(): a mix that updates groups, empties some (a NULL-keyed one among them), creates
-- others (with NULL keys), moves groups across the HAVING line, and changes a MAX.
CREATE PROCEDURE changes(base int) LANGUAGE sql AS $$
UPDATE vw.sale SET qty = qty + 1 WHERE id % 3 = 0;
DELETE FROM vw.sale WHERE region = 'r1' AND product = 'p0';
DELETE FROM vw.sale WHERE region IS NULL AND product = 'p2';
INSERT INTO vw.sale VALUES (base, NULL, 'p9', 5, 2.5), (base + 1, 'r7', NULL, 1, 1);
UPDATE vw.sale SET region = 'r9' WHERE id BETWEEN 10 AND 40;
UPDATE vw.sale SET price = price * 2 WHERE id = (SELECT max(id) FROM vw.sale WHERE region = 'r2');
$$;

-- 1. An index a user adds to the view: after the changes, a scan of that index finds
--    exactly the rows a sequential scan finds.
CREATE INDEX by_region_qty ON by_region (qty);
CALL changes(1000);
SELECT chk_all();
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT region, product, qty FROM by_region WHERE qty > 0;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT * FROM via_index('SELECT region, product, qty FROM vw.by_region WHERE qty > 0');

-- 2. A unique index a user adds is enforced, on rows updated and on rows inserted: a change
--    that would give two parties the same count fails the writer's statement (23505), and
--    nothing of it is applied.
CREATE TABLE vote (id int PRIMARY KEY, party text);
INSERT INTO vote VALUES (1, 'a'), (2, 'a'), (3, 'a'), (4, 'b'), (5, 'b');
SELECT mk('tally', 'SELECT party, count(*) AS n FROM vote GROUP BY party');
CREATE UNIQUE INDEX tally_n ON tally (n);
CALL try($$INSERT INTO vw.vote VALUES (6, 'b')$$);
CALL try($$INSERT INTO vw.vote VALUES (6, 'c')$$);
CALL try($$INSERT INTO vw.vote VALUES (7, 'd')$$);
CALL try($$UPDATE vw.vote SET party = 'd' WHERE id = 1$$);
TABLE tally ORDER BY party;
SELECT count(*) AS votes FROM vote;
SELECT chk_all();

-- 3. A user's row trigger on the view sees every row change: it keeps a copy of the view
--    that must equal it afterwards.
CREATE TABLE mirror AS TABLE by_region;
CREATE FUNCTION mirror() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM vw.mirror m WHERE (m.*)::text = (OLD.*)::text;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO vw.mirror SELECT NEW.*;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER mirror AFTER INSERT OR UPDATE OR DELETE ON by_region FOR EACH ROW EXECUTE FUNCTION mirror();
CALL changes(3000);
SELECT chk_all();
SELECT (SELECT count(*) FROM (SELECT t::text FROM mirror t EXCEPT ALL SELECT t::text FROM by_region t) a) +
       (SELECT count(*) FROM (SELECT t::text FROM by_region t EXCEPT ALL SELECT t::text FROM mirror t) b)
       AS mirror_differs;
DROP TRIGGER mirror ON by_region;

-- 4. Savepoints undo the rows written, in both settings of ivm.immediate_apply.
BEGIN;
SAVEPOINT a;
CALL changes(4000);
SELECT chk_all();
ROLLBACK TO SAVEPOINT a;
SELECT chk_all();
COMMIT;
SET ivm.immediate_apply = 'transaction';
BEGIN;
CALL changes(5000);
SAVEPOINT a;
DELETE FROM sale WHERE product = 'p1';
SELECT chk_all();
ROLLBACK TO SAVEPOINT a;
COMMIT;
SELECT chk_all();
RESET ivm.immediate_apply;

-- 5. REPEATABLE READ: the SQL statement writes the view.
BEGIN ISOLATION LEVEL REPEATABLE READ;
CALL changes(6000);
COMMIT;
SELECT chk_all();

-- 6. A group column of a domain type: the SQL statement writes the view (writing a row
--    directly would not check the domain).
CREATE DOMAIN code AS text CHECK (VALUE <> '');
CREATE TABLE tagged (id int PRIMARY KEY, tag code, amount int);
INSERT INTO tagged SELECT g, 't' || (g % 4), g FROM generate_series(1, 40) g;
SELECT mk('per_tag', 'SELECT tag, count(*) AS n, sum(amount) AS amount FROM tagged GROUP BY tag');
UPDATE tagged SET amount = amount + 1 WHERE id % 2 = 0;
DELETE FROM tagged WHERE tag = 't1';
INSERT INTO tagged VALUES (100, 'new', 1);
SELECT chk_all();
TABLE per_tag ORDER BY tag;

-- 7. Views without aggregates that have one row per key are written by key too: a filter
--    over a table's unique column, and an outer join keyed by the preserved side's key.
CREATE TABLE acct (id int PRIMARY KEY, owner text, balance numeric);
INSERT INTO acct SELECT g, 'o' || g, g * 3 FROM generate_series(1, 60) g;
CREATE TABLE note (acct int PRIMARY KEY, txt text);
INSERT INTO note SELECT g, 'n' || g FROM generate_series(1, 60, 3) g;
SELECT mk('rich', 'SELECT id, owner, balance * 2 AS doubled FROM acct WHERE balance > 30');
SELECT mk('acct_notes', 'SELECT a.id, a.owner, n.txt FROM acct a LEFT JOIN note n ON n.acct = a.id');
-- explain shows the steps for an INSERT into the first table: acct_notes takes its rows
-- with a NULL key through the SQL statement (they are no key's row), its changes of note
-- by key.
SELECT v, ivm.explain(v) LIKE '%3. write the view by key (%' AS by_key
FROM unnest(ARRAY['rich', 'acct_notes', 'by_region', 'regions', 'big_regions']) v;
CREATE PROCEDURE acct_changes(base int) LANGUAGE sql AS $$
UPDATE vw.acct SET balance = balance + 20 WHERE id % 5 = 0;
DELETE FROM vw.acct WHERE id % 11 = 0;
INSERT INTO vw.acct VALUES (base, 'new', 100), (base + 1, 'poor', 1);
UPDATE vw.acct SET id = id + base WHERE id IN (7, 8);
UPDATE vw.acct SET owner = NULL WHERE id = 13;
INSERT INTO vw.note VALUES (base, 'n'), (2, 'two') ON CONFLICT (acct) DO UPDATE SET txt = excluded.txt || '!';
DELETE FROM vw.note WHERE acct % 6 = 1;
$$;
CREATE INDEX rich_doubled ON rich (doubled);
CALL acct_changes(1000);
SELECT chk_all();
SELECT * FROM via_index('SELECT id, doubled FROM vw.rich WHERE doubled > 0');
SET ivm.immediate_apply = 'transaction';
BEGIN;
CALL acct_changes(2000);
SAVEPOINT a;
DELETE FROM acct WHERE id < 30;
ROLLBACK TO SAVEPOINT a;
COMMIT;
RESET ivm.immediate_apply;
BEGIN ISOLATION LEVEL REPEATABLE READ;
CALL acct_changes(3000);
COMMIT;
SELECT chk_all();

DROP SCHEMA vw CASCADE;
RESET search_path;
SELECT ivm_leftovers();

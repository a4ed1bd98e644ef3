-- 03_joins: inner, outer (LEFT/RIGHT/FULL), chained, self and cross joins, tables without
-- primary keys and duplicate rows.  After every step chk_all() compares each ivm view
-- with its oracle o_<name> (a plain view, same query): verify and EXCEPT ALL both ways.
\set VERBOSITY terse
CREATE SCHEMA joins;
SET search_path = joins, public;

CREATE TABLE cust (id int PRIMARY KEY, name text, region text);
CREATE TABLE ord (oid int PRIMARY KEY, cust_id int, amount int, status text);
CREATE TABLE pay (cust_id int, amt int);          -- no primary key: duplicates allowed
CREATE TABLE a (k int, v text);                   -- no primary keys, NULL keys
CREATE TABLE b (k int, w text);

INSERT INTO cust VALUES (1, 'ann', 'north'), (2, 'bob', 'south'), (3, 'cid', 'north'), (4, 'dee', NULL);
INSERT INTO ord VALUES (10, 1, 100, 'paid'), (11, 1, 40, 'cancelled'), (12, 2, 70, 'paid'),
                       (13, 5, 90, 'paid'),    -- customer 5 does not exist
                       (14, NULL, 10, 'paid');
INSERT INTO pay VALUES (1, 30), (1, 30), (2, 5), (NULL, 1);
INSERT INTO a VALUES (1, 'a1'), (2, 'a2'), (NULL, 'anull'), (4, 'a4');
INSERT INTO b VALUES (1, 'b1'), (3, 'b3'), (NULL, 'bnull'), (4, 'b4'), (4, 'b4bis');

SELECT mk('j_inner', 'SELECT c.id, c.name, o.oid, o.amount FROM cust c JOIN ord o ON o.cust_id = c.id
                      WHERE o.status <> ''cancelled''');
SELECT mk('j_left',  'SELECT a.k, a.v, b.w FROM a LEFT JOIN b ON a.k = b.k');
SELECT mk('j_right', 'SELECT a.k AS ak, a.v, b.k AS bk, b.w FROM a RIGHT JOIN b ON a.k = b.k');
SELECT mk('j_full',  'SELECT a.k AS ak, a.v, b.k AS bk, b.w FROM a FULL JOIN b ON a.k = b.k');
-- Extra conjuncts in ON (on both sides): they restrict matches, not the preserved side.
SELECT mk('j_on',    'SELECT a.k, a.v, b.w FROM a LEFT JOIN b ON a.k = b.k AND b.w <> ''b4bis'' AND a.v <> ''a2''');
-- A chain of LEFT JOINs on one key.
SELECT mk('j_chain', 'SELECT c.id, c.name, o.oid, p.amt FROM cust c LEFT JOIN ord o ON o.cust_id = c.id
                      LEFT JOIN pay p ON p.cust_id = c.id');
-- Self-join: customers of the same region.
SELECT mk('j_self',  'SELECT c1.name AS name1, c2.name AS name2 FROM cust c1 JOIN cust c2
                      ON c1.region = c2.region AND c1.id < c2.id');
-- Cross join written as FROM a, b WHERE ..., and a true cross product.
SELECT mk('j_comma', 'SELECT c.name, o.oid, o.amount FROM cust c, ord o WHERE c.id = o.cust_id AND o.amount > 50');
SELECT mk('j_cross', 'SELECT a.v, b.w FROM a, b WHERE a.v < ''a3''');
-- Duplicates: pay has two identical rows for customer 1; multiplicities must be kept.
SELECT mk('j_dup',   'SELECT p.cust_id, p.amt, c.name FROM pay p JOIN cust c ON c.id = p.cust_id');
-- A join under an aggregate.
SELECT mk('j_agg',   'SELECT c.id, c.name, count(o.oid) AS n, sum(o.amount) AS total
                      FROM cust c LEFT JOIN ord o ON o.cust_id = c.id GROUP BY c.id, c.name');

SELECT chk_all();
TABLE j_inner ORDER BY 1, 2, 3, 4;
TABLE j_left ORDER BY 1, 2, 3;
TABLE j_right ORDER BY 1, 2, 3, 4;
TABLE j_full ORDER BY 1, 2, 3, 4;
TABLE j_on ORDER BY 1, 2, 3;
TABLE j_chain ORDER BY 1, 2, 3, 4;
TABLE j_self ORDER BY 1, 2;
TABLE j_comma ORDER BY 1, 2, 3;
TABLE j_cross ORDER BY 1, 2;
TABLE j_dup ORDER BY 1, 2, 3;
TABLE j_agg ORDER BY 1, 2, 3, 4;

-- 1. A new match: a's row k=2 stops being NULL-extended, b's row k=3 finds a partner.
INSERT INTO b VALUES (2, 'b2');
INSERT INTO a VALUES (3, 'a3');
SELECT chk_all();
TABLE j_left ORDER BY 1, 2, 3;
TABLE j_full ORDER BY 1, 2, 3, 4;

-- 2. The last match goes away: a's k=1 row is NULL-extended again; rows with NULL keys
--    never match, even each other.
DELETE FROM b WHERE k = 1;
INSERT INTO a VALUES (NULL, 'anull2');
INSERT INTO b VALUES (NULL, 'bnull2');
SELECT chk_all();
TABLE j_left ORDER BY 1, 2, 3;
TABLE j_right ORDER BY 1, 2, 3, 4;
TABLE j_full ORDER BY 1, 2, 3, 4;

-- 3. Duplicate rows: two identical (4, 'a4') rows in a times two b rows with k = 4; then
--    delete just one of the duplicates (tables without keys: by ctid).
INSERT INTO a VALUES (4, 'a4');
SELECT chk_all();
SELECT k, v, w, count(*) FROM j_left WHERE k = 4 GROUP BY k, v, w ORDER BY 1, 2, 3;
DELETE FROM a WHERE ctid = (SELECT min(ctid) FROM a WHERE k = 4);
SELECT chk_all();
SELECT k, v, w, count(*) FROM j_left WHERE k = 4 GROUP BY k, v, w ORDER BY 1, 2, 3;
INSERT INTO pay VALUES (1, 30), (3, 7);
UPDATE pay SET amt = 31 WHERE ctid = (SELECT min(ctid) FROM pay WHERE cust_id = 1);
SELECT chk_all();
TABLE j_dup ORDER BY 1, 2, 3;
TABLE j_chain ORDER BY 1, 2, 3, 4;

-- 4. UPDATE of join keys: an order moves from ann to bob, one to the missing customer 5
--    (whose row then appears), a's k=2 row gets a NULL key, dee gets a region.
UPDATE ord SET cust_id = 2 WHERE oid = 10;
INSERT INTO cust VALUES (5, 'eve', 'south');
UPDATE a SET k = NULL WHERE k = 2;
UPDATE cust SET region = 'north' WHERE id = 4;
SELECT chk_all();
TABLE j_inner ORDER BY 1, 2, 3, 4;
TABLE j_full ORDER BY 1, 2, 3, 4;
TABLE j_self ORDER BY 1, 2;
TABLE j_agg ORDER BY 1, 2, 3, 4;

-- 5. Both sides change in one statement's transaction, and a customer changes its key.
BEGIN;
UPDATE a SET k = k + 1 WHERE k IS NOT NULL;
UPDATE b SET k = k + 1 WHERE k IS NOT NULL;
UPDATE cust SET id = 6 WHERE id = 3;
COMMIT;
SELECT chk_all();
TABLE j_full ORDER BY 1, 2, 3, 4;

-- 6. DELETE of a whole customer: its orders, payments and itself.
BEGIN;
DELETE FROM ord WHERE cust_id = 2;
DELETE FROM pay WHERE cust_id = 2;
DELETE FROM cust WHERE id = 2;
COMMIT;
SELECT chk_all();
TABLE j_inner ORDER BY 1, 2, 3, 4;
TABLE j_chain ORDER BY 1, 2, 3, 4;
TABLE j_agg ORDER BY 1, 2, 3, 4;

-- 7. ROLLBACK and TRUNCATE of one side of the outer joins.
BEGIN;
DELETE FROM a;
INSERT INTO b VALUES (100, 'b100');
SELECT chk_all();
ROLLBACK;
SELECT chk_all();
TRUNCATE b;
SELECT chk_all();
TABLE j_full ORDER BY 1, 2, 3, 4;
TRUNCATE a;
INSERT INTO b VALUES (1, 'b1'), (NULL, 'bnull');
SELECT chk_all();
TABLE j_full ORDER BY 1, 2, 3, 4;
TABLE j_cross ORDER BY 1, 2;

-- 8. Outer joins whose inputs are all unique on the join key (a primary key, a unique index,
-- an aggregate grouped by the key): the view has at most one row per key, and its old and
-- new rows are matched on the key.  Deferrable or partial uniqueness proves nothing, and
-- neither does a primary key on another column.
CREATE TABLE u1 (id int PRIMARY KEY, x text);
CREATE TABLE u2 (id int, y int);
CREATE UNIQUE INDEX u2_id ON u2 (id);
CREATE TABLE u3 (id int UNIQUE DEFERRABLE INITIALLY DEFERRED, z int);
CREATE TABLE u4 (id int, z int);
CREATE UNIQUE INDEX u4_part ON u4 (id) WHERE z > 0;
INSERT INTO u1 VALUES (1, 'a'), (2, 'b'), (3, 'c');
INSERT INTO u2 VALUES (1, 10), (2, 20), (NULL, 0), (NULL, 1);
INSERT INTO u3 VALUES (1, 100), (3, 300);
INSERT INTO u4 VALUES (1, 1), (1, -1), (2, 2);
SELECT mk('j_u12',   'SELECT u1.id, u1.x, u2.y FROM u1 LEFT JOIN u2 ON u2.id = u1.id AND u2.y < 100');
SELECT mk('j_u2agg', 'SELECT u2.id, u2.y, s.n, s.total FROM u2 LEFT JOIN
                      (SELECT cust_id, count(*) AS n, sum(amount) AS total FROM ord GROUP BY cust_id) s
                      ON s.cust_id = u2.id');
SELECT mk('j_u13',   'SELECT u1.id, u1.x, u3.z FROM u1 LEFT JOIN u3 ON u3.id = u1.id');
SELECT mk('j_u14',   'SELECT u1.id, u1.x, u4.z FROM u1 LEFT JOIN u4 ON u4.id = u1.id');
SELECT mk('j_uord',  'SELECT u1.id, u1.x, o.amount FROM u1 LEFT JOIN ord o ON o.cust_id = u1.id');
SELECT v, ivm.explain(v) LIKE '%at most one row per key%' AS one_row_per_key
FROM unnest(ARRAY['j_u12', 'j_u2agg', 'j_u13', 'j_u14', 'j_uord']) v;
-- A view over one relation that shows a column distinct and never NULL in that relation (its
-- primary key, or the key of a view over outer joins whose preserved side is keyed so) has one
-- row per value of it, and a changed row is found by it.  Unique but nullable is not enough.
SELECT mk('j_u1proj',  'SELECT x, id FROM u1 WHERE x IS DISTINCT FROM ''zz''');
SELECT mk('j_u12proj', 'SELECT y, id FROM j_u12');
SELECT mk('j_u2proj',  'SELECT y, id FROM u2');
SELECT mk('j_uaggproj', 'SELECT n, id FROM j_u2agg');
SELECT v, ivm.explain(v) LIKE '%View key: id, one row per key%' AS one_row_per_key
FROM unnest(ARRAY['j_u1proj', 'j_u12proj', 'j_u2proj', 'j_uaggproj']) v;
SELECT chk_all();

BEGIN;
UPDATE u2 SET y = y + 1;
UPDATE u1 SET id = id + 10 WHERE id = 3;          -- a key moves
INSERT INTO u2 VALUES (13, 130), (NULL, 2);
DELETE FROM u1 WHERE id = 2;
UPDATE u3 SET id = 4 - id;                        -- 1 and 3 swap: unique only at commit
INSERT INTO u4 VALUES (3, -3), (3, -4), (13, -1);  -- duplicates the partial index allows
INSERT INTO ord VALUES (20, 13, 5, 'paid'), (21, NULL, 6, 'paid');
COMMIT;
SELECT chk_all();
BEGIN;
UPDATE u2 SET y = 99 WHERE id = 13;               -- now below the ON filter: matches
UPDATE ord SET cust_id = 2 WHERE cust_id = 13;
DELETE FROM u2 WHERE id IS NULL AND y = 1;
SAVEPOINT s;
DELETE FROM u1;
ROLLBACK TO s;
UPDATE u1 SET x = NULL WHERE id = 1;
COMMIT;
SELECT chk_all();
TABLE j_u12 ORDER BY 1;
TABLE j_u2agg ORDER BY 1, 2;
-- Dropping an index a view relies on: the view falls back to the general maintenance (and so
-- do the views over it), and stays exact when the key then repeats.
DROP INDEX u2_id;
SELECT v, ivm.explain(v) ~ 'View key: id, (at most )?one row per key' AS one_row_per_key
FROM unnest(ARRAY['j_u12', 'j_u2agg', 'j_u1proj', 'j_u12proj']) v;
INSERT INTO u2 VALUES (1, 12), (13, 14);
SELECT chk_all();
ALTER TABLE u1 DROP CONSTRAINT u1_pkey;
SELECT v, ivm.explain(v) ~ 'View key: id, (at most )?one row per key' AS one_row_per_key
FROM unnest(ARRAY['j_u12', 'j_u1proj', 'j_u12proj']) v;
INSERT INTO u1 VALUES (1, 'again'), (13, 'twin');
UPDATE u1 SET x = 'both' WHERE id = 1;
SELECT chk_all();
TABLE j_u12 ORDER BY 1, 2, 3;

-- 9. Creating such an index again, or a unique index or key a view never had, proves the key:
-- the views take the key paths again (those over them follow), in the transaction that creates
-- it (a rollback takes it back), and stay exact.  A FULL join never qualifies, nor does
-- uniqueness that is only deferred.
CREATE TABLE u5 (id int, w text);
INSERT INTO u5 VALUES (1, 'w1'), (13, 'w13'), (NULL, 'wn');
SELECT mk('j_u15',   'SELECT u1.id, u1.x, u5.w FROM u1 LEFT JOIN u5 ON u5.id = u1.id');
SELECT mk('j_ufull', 'SELECT u1.id, u1.x, u2.y FROM u1 FULL JOIN u2 ON u2.id = u1.id');
CREATE VIEW key_paths AS
SELECT v, ivm.explain(v) ~ 'View key: id, (at most )?one row per key' AS one_row_per_key
FROM unnest(ARRAY['j_u12', 'j_u2agg', 'j_u1proj', 'j_u12proj', 'j_u13', 'j_u15', 'j_ufull']) v;
TABLE key_paths;
DELETE FROM u2 a USING u2 b WHERE a.id = b.id AND a.ctid > b.ctid;   -- the keys repeat no more
DELETE FROM u1 a USING u1 b WHERE a.id = b.id AND a.ctid > b.ctid;
SELECT chk_all();
BEGIN;
CREATE UNIQUE INDEX u2_id_again ON u2 (id);
ALTER TABLE u1 ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX u5_id ON u5 (id);
TABLE key_paths;
INSERT INTO u5 VALUES (2, 'w2');
SELECT chk_all();
ROLLBACK;
TABLE key_paths;
CREATE UNIQUE INDEX u2_id_again ON u2 (id);
ALTER TABLE u1 ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX u5_id ON u5 (id);
CREATE UNIQUE INDEX CONCURRENTLY u3_id ON u3 (id);  -- u3's deferrable key did not prove it
TABLE key_paths;
BEGIN;
UPDATE u1 SET id = id + 100 WHERE id = 13; -- a key moves
INSERT INTO u1 VALUES (2, 'back');
INSERT INTO u5 VALUES (2, 'w2'), (3, 'w3');
UPDATE u2 SET y = y * 2;
DELETE FROM u5 WHERE id IS NULL;
UPDATE u3 SET z = z + 1;
COMMIT;
SELECT chk_all();
TABLE j_u15 ORDER BY 1;

-- 12_transaction: ivm.immediate_apply = 'transaction'.  Immediate views take the
-- transaction's changes together: before the transaction next reads a view (or runs a
-- utility command, or an ivm function), and at COMMIT.  Every read inside the transaction
-- must still see its own writes, savepoints must unwind the buffer (also what a read
-- inside them maintained), and an error in maintenance must fail the COMMIT with nothing
-- applied.
CREATE SCHEMA tx;
SET search_path = tx, public;
\set VERBOSITY terse

CREATE TABLE cust (id int PRIMARY KEY, name text, tier text);
CREATE TABLE ord (id int PRIMARY KEY, cust int, amt numeric, status text);
INSERT INTO cust SELECT g, 'c' || g, CASE WHEN g % 2 = 0 THEN 'gold' ELSE 'basic' END
FROM generate_series(1, 6) g;
INSERT INTO ord SELECT g, g % 6 + 1, g * 10, CASE WHEN g % 3 = 0 THEN 'open' ELSE 'paid' END
FROM generate_series(1, 30) g;
SELECT mk('per_cust', 'SELECT cust, count(*) AS n, sum(amt) AS total, max(amt) AS top
                       FROM ord GROUP BY cust');
SELECT ivm.create_view('tx.c360', $$SELECT c.id, c.name, c.tier, coalesce(p.n, 0) AS n, p.total, p.top
                                   FROM tx.cust c LEFT JOIN tx.per_cust p ON p.cust = c.id$$);
CREATE VIEW o_c360 AS SELECT c.id, c.name, c.tier, coalesce(p.n, 0) AS n, p.total, p.top
                      FROM cust c LEFT JOIN o_per_cust p ON p.cust = c.id;
SELECT mk('tiers', 'SELECT tier, count(*) AS customers, sum(total) AS total FROM tx.c360 GROUP BY tier');

SET ivm.immediate_apply = 'transaction';
SHOW ivm.immediate_apply;

-- 1. Several statements, then a read: the views show all of them (read-your-writes), at
--    every level of views over views.
BEGIN;
INSERT INTO ord VALUES (100, 1, 1000, 'paid');
UPDATE ord SET amt = amt + 1 WHERE id = 2;
DELETE FROM ord WHERE id = 3;
INSERT INTO cust VALUES (7, 'c7', 'gold');
INSERT INTO ord VALUES (101, 7, 5, 'open');
UPDATE ord SET cust = 7 WHERE id = 100;    -- the row inserted above, changed again
TABLE c360 ORDER BY id;
TABLE tiers ORDER BY tier;
SELECT chk_all();
-- More changes after the read, then COMMIT maintains them.
DELETE FROM ord WHERE id = 101;
INSERT INTO ord VALUES (102, 2, 7, 'paid');
COMMIT;
SELECT chk_all();
SELECT (SELECT count(*) FROM (TABLE c360 EXCEPT ALL TABLE o_c360) a) +
       (SELECT count(*) FROM (TABLE o_c360 EXCEPT ALL TABLE c360) b) AS c360_diff;

-- 2. A savepoint rolled back takes its statements' changes out of the buffer.
BEGIN;
INSERT INTO ord VALUES (110, 1, 1, 'paid');
SAVEPOINT a;
INSERT INTO ord VALUES (111, 1, 2, 'paid');
DELETE FROM ord WHERE cust = 2;
ROLLBACK TO a;
INSERT INTO ord VALUES (112, 1, 3, 'paid');
SELECT * FROM per_cust WHERE cust IN (1, 2) ORDER BY cust;
COMMIT;
SELECT chk_all();

-- 3. A read inside a savepoint maintains what came before it; rolling the savepoint back
--    undoes that maintenance, and the changes from before it are maintained again later.
BEGIN;
INSERT INTO ord VALUES (120, 3, 50, 'paid');
SAVEPOINT b;
INSERT INTO ord VALUES (121, 3, 60, 'paid');
SELECT n, total FROM per_cust WHERE cust = 3;
ROLLBACK TO b;
SELECT n, total FROM per_cust WHERE cust = 3;
SAVEPOINT c;
INSERT INTO ord VALUES (122, 3, 70, 'paid');
RELEASE c;
COMMIT;
SELECT chk_all();
SELECT n, total FROM per_cust WHERE cust = 3;

-- Nested savepoints released into their parent, then the whole transaction rolled back.
BEGIN;
SAVEPOINT d;
INSERT INTO ord VALUES (130, 4, 1, 'paid');
SAVEPOINT e;
UPDATE ord SET amt = 0 WHERE cust = 4;
RELEASE e;
SELECT n, total FROM per_cust WHERE cust = 4;
RELEASE d;
ROLLBACK;
SELECT chk_all();

-- 4. An error in maintenance fails the COMMIT, and nothing of the transaction stays.
SELECT mk('ratio', 'SELECT id, 100 / amt AS r FROM ord');
BEGIN;
INSERT INTO ord VALUES (140, 5, 4, 'paid');
INSERT INTO ord VALUES (141, 5, 0, 'paid');   -- 100 / 0, found when maintained
COMMIT;
SELECT count(*) FROM ord WHERE id IN (140, 141);
SELECT chk_all();
SELECT ivm.drop_view('tx.ratio');
DROP VIEW o_ratio;

-- 5. Utility commands and ivm functions see maintained views: COPY of a view's table, and
--    ivm.verify, in the middle of a transaction.
BEGIN;
INSERT INTO ord VALUES (150, 6, 600, 'paid');
COPY (SELECT cust, n FROM per_cust WHERE cust = 6) TO STDOUT;
INSERT INTO ord VALUES (151, 6, 601, 'paid');
COPY per_cust TO STDOUT WITH (FORMAT csv);
INSERT INTO ord VALUES (152, 6, 602, 'paid');
SELECT ivm.verify('tx.per_cust') AS verify_mid_transaction;
COMMIT;

-- 6. A trigger of a written table may read a view while the statement runs: the earlier
--    changes are maintained before that statement starts.
CREATE TABLE audit (id int, seen bigint);
CREATE FUNCTION audit_ord() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit SELECT NEW.id, n FROM per_cust WHERE cust = NEW.cust;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_ord AFTER INSERT ON ord FOR EACH ROW EXECUTE FUNCTION audit_ord();
-- A statement trigger sees the views as they were before its own statement, as in mode
-- 'statement' (the change of a table with other triggers is maintained when its statement
-- ends), and every earlier statement's change.
CREATE FUNCTION audit_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit SELECT -1, sum(n) FROM per_cust;
    RETURN NULL;
END $$;
CREATE TRIGGER zz_audit_stmt AFTER INSERT ON ord FOR EACH STATEMENT EXECUTE FUNCTION audit_stmt();
BEGIN;
UPDATE ord SET cust = 1 WHERE id = 150;
INSERT INTO ord VALUES (160, 1, 1, 'paid');
INSERT INTO ord VALUES (161, 1, 1, 'paid');
SELECT count(*) AS orders FROM ord;
COMMIT;
TABLE audit;
SELECT chk_all();
DROP TRIGGER audit_ord ON ord;
DROP TRIGGER zz_audit_stmt ON ord;

-- A function that reads a view, called by a data-modifying statement while changes wait:
-- that statement's own change is under way, so maintaining the earlier ones now would mix
-- them with part of it.  Refused (0A000), with the way out.
CREATE FUNCTION top_of(c int) RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT top FROM per_cust WHERE cust = c);
END $$;
BEGIN;
INSERT INTO ord VALUES (170, 2, 20, 'paid');
SAVEPOINT f;
\set VERBOSITY default
UPDATE ord SET amt = top_of(2) WHERE id = 170;
\set VERBOSITY terse
ROLLBACK TO f;

-- In a statement of its own, the read is fine.
SELECT top_of(2) AS top;
UPDATE ord SET amt = top_of(2) WHERE id = 170;   -- nothing waits now
COMMIT;
SELECT chk_all();
-- The same for a function that writes a table with triggers (they could read a view).
CREATE TABLE noted (id int);
CREATE FUNCTION noted_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER noted_row AFTER INSERT ON noted FOR EACH ROW EXECUTE FUNCTION noted_row();
CREATE FUNCTION note(i int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO noted VALUES (i);
    RETURN i;
END $$;
BEGIN;
INSERT INTO ord VALUES (171, 2, 20, 'paid');
INSERT INTO audit VALUES (note(171), 0);
ROLLBACK;

-- 7. Back to 'statement' in the middle of a transaction: the next change is maintained at
--    once, together with those still waiting.
BEGIN;
INSERT INTO ord VALUES (190, 5, 1, 'paid');
SET LOCAL ivm.immediate_apply = 'statement';
INSERT INTO ord VALUES (191, 5, 2, 'paid');
SELECT n FROM per_cust WHERE cust = 5;
COMMIT;
SELECT chk_all();

-- 8. Two-phase commit: PREPARE TRANSACTION maintains what waits; the views' changes are part
--    of the prepared transaction, committed or rolled back with it.
BEGIN;
INSERT INTO ord VALUES (195, 5, 10, 'paid');
PREPARE TRANSACTION 'ivm_tx_1';
COMMIT PREPARED 'ivm_tx_1';
BEGIN;
INSERT INTO ord VALUES (196, 5, 20, 'paid');
PREPARE TRANSACTION 'ivm_tx_2';
ROLLBACK PREPARED 'ivm_tx_2';
SELECT n, total FROM per_cust WHERE cust = 5;
SELECT chk_all();

-- 9. TRUNCATE and DDL in the middle of a transaction maintain what waits first.
BEGIN;
INSERT INTO ord VALUES (200, 6, 3, 'paid');
ALTER TABLE ord ADD COLUMN note text;
INSERT INTO ord VALUES (201, 6, 4, 'paid', 'x');
TRUNCATE ord;
INSERT INTO ord VALUES (202, 6, 5, 'paid', 'y');
SELECT chk_all();
COMMIT;
SELECT chk_all();
TABLE per_cust;

RESET ivm.immediate_apply;

-- 16_rows_below_sql: what a keyed view's rows of the changed keys become, computed below SQL
-- (apply/spj_rows) with the view's own expressions compiled once: a projection of one table
-- (rows of equal images cancel; per key the added row wins) and a chain of inner and left
-- joins sharing one unique key (one index probe per table and key, the join conditions, the
-- WHERE and the outputs evaluated on the joined row).  Every view is checked against its plain
-- twin after each change (compared as text: a numeric's scale counts), and took() says which
-- path computed the rows.
CREATE SCHEMA rb;
SET search_path = rb, public;
\set VERBOSITY terse
SELECT took('rows computed%');

CREATE TABLE acct (id int PRIMARY KEY, name text, tier text, bal numeric, note text);
CREATE TABLE prof (acct_id int PRIMARY KEY, score int, city text);
CREATE TABLE flag (acct_id int PRIMARY KEY, on_hold boolean NOT NULL);
CREATE TABLE ev (id serial PRIMARY KEY, acct_id int, kind text, amt numeric);
INSERT INTO acct SELECT g, 'n' || g, (ARRAY['gold', 'silver', NULL])[1 + g % 3], g * 1.5,
                        CASE WHEN g % 4 = 0 THEN NULL ELSE 'x' END
FROM generate_series(1, 40) g;
INSERT INTO prof SELECT g, g % 7 - 3, CASE WHEN g % 5 = 0 THEN NULL ELSE 'c' || (g % 3) END
FROM generate_series(1, 40, 2) g;
INSERT INTO flag SELECT g, g % 2 = 0 FROM generate_series(1, 40, 3) g;
INSERT INTO ev (acct_id, kind, amt) SELECT 1 + g % 30, (ARRAY['buy', 'view'])[1 + g % 2], g
FROM generate_series(1, 120) g;

-- A projection of one table with a WHERE, keyed by its primary key.
SELECT mk('proj', 'SELECT id, upper(name) AS name, coalesce(tier, ''-'') AS tier, bal * 2 AS dbl,
                          CASE WHEN bal > 30 THEN ''hi'' ELSE ''lo'' END AS band
                   FROM acct WHERE note IS NOT NULL');
-- An aggregate view, read by the chain below.
SELECT mk('ev_sum', 'SELECT acct_id, count(*) AS n, sum(amt) AS total FROM ev GROUP BY acct_id');
-- Left joins (one with a condition besides the key), an inner join, a WHERE on the root.
SELECT mk('chain', 'SELECT a.id, a.name, p.score, coalesce(p.city, ''?'') AS city, coalesce(s.n, 0) AS n,
                           s.total, f.on_hold
                    FROM acct a
                    LEFT JOIN prof p ON p.acct_id = a.id AND p.score > -2
                    LEFT JOIN ev_sum s ON s.acct_id = a.id
                    JOIN flag f ON f.acct_id = a.id
                    WHERE a.tier IS DISTINCT FROM ''silver''');
-- A projection of that view (its changes arrive as a bag with __m).
SELECT mk('pts', 'SELECT id, name, n * 10 + coalesce(score, 0) AS pts FROM chain WHERE n > 0');
SELECT chk_all();
SELECT took('rows computed%');

-- 1. Changes a projection sees: values, a value changing only its image (3.0 -> 3.00: equal,
--    but the view must read as its query does), a row leaving and entering the WHERE, a key
--    changing, a row deleted, rows inserted.
UPDATE acct SET bal = bal + 1 WHERE id <= 5;
SELECT took('rows computed%');
UPDATE acct SET bal = 3.00 WHERE id = 2;
SELECT dbl FROM proj WHERE id = 2;
UPDATE acct SET note = NULL WHERE id = 6;
UPDATE acct SET note = 'back' WHERE id = 8;
UPDATE acct SET id = id + 100 WHERE id = 10;
DELETE FROM acct WHERE id = 11;
INSERT INTO acct VALUES (41, 'new', 'gold', 7, 'x'), (42, NULL, NULL, NULL, 'x');
SELECT chk_all();
SELECT took('rows computed%');
-- An UPDATE that changes nothing a view reads: the rows cancel, nothing is written.
UPDATE acct SET note = note WHERE id = 1;
SELECT took('rows computed%');
SELECT chk_all();

-- 2. Changes the chain sees, through each of its inputs: the root gone (its row goes), a key
--    the inner join loses and regains, a left join whose condition stops holding, the
--    aggregate below changing, new groups, a NULL key.
INSERT INTO flag VALUES (41, false), (2, true) ON CONFLICT (acct_id) DO NOTHING;
DELETE FROM flag WHERE acct_id = 4;
UPDATE prof SET score = -3 WHERE acct_id = 1;
UPDATE prof SET score = 3, city = NULL WHERE acct_id = 7;
INSERT INTO ev (acct_id, kind, amt) VALUES (1, 'buy', 5), (41, 'buy', 1.50), (NULL, 'view', 2);
DELETE FROM ev WHERE acct_id = 13;
DELETE FROM acct WHERE id = 19;
UPDATE acct SET tier = 'silver' WHERE id = 22;
UPDATE acct SET tier = 'gold' WHERE id = 23;
SELECT chk_all();
SELECT took('rows computed%');

-- 3. Several tables in one transaction (maintained at each statement), a savepoint rolled
--    back, then everything at once under ivm.immediate_apply = 'transaction'.
BEGIN;
UPDATE acct SET name = name || '+' WHERE id % 5 = 0;
SAVEPOINT s;
DELETE FROM prof;
INSERT INTO flag SELECT g, true FROM generate_series(1, 40) g ON CONFLICT (acct_id) DO UPDATE SET on_hold = NOT flag.on_hold;
ROLLBACK TO s;
UPDATE ev SET amt = amt * 2 WHERE acct_id < 5;
COMMIT;
SELECT chk_all();
SET ivm.immediate_apply = 'transaction';
BEGIN;
UPDATE acct SET bal = bal - 1, name = lower(name) WHERE id BETWEEN 20 AND 30;
DELETE FROM flag WHERE acct_id BETWEEN 25 AND 35;
INSERT INTO ev (acct_id, kind, amt) SELECT g, 'buy', g FROM generate_series(20, 30) g;
INSERT INTO flag VALUES (26, true);
COMMIT;
RESET ivm.immediate_apply;
SELECT chk_all();
SELECT took('rows computed%');

-- 3b. An output that fails (division by zero) in a savepoint: the statement fails, the
--    savepoint is rolled back, and the same transaction's next change is computed with the same
--    expressions' state (built once per transaction) and is exact.
SELECT mk('ratio', 'SELECT id, 100 / (bal - 10)::int AS r FROM acct WHERE bal IS NOT NULL');
BEGIN;
UPDATE acct SET bal = 1 WHERE id = 1;
SAVEPOINT s;
CALL try('UPDATE rb.acct SET bal = 10 WHERE id = 2');
ROLLBACK TO s;
UPDATE acct SET bal = 5 WHERE id = 3;
COMMIT;
SELECT r FROM ratio WHERE id IN (1, 2, 3) ORDER BY id;
SELECT chk_all();
SELECT took('rows computed%');

-- 4. A right the view's owner has lost: the statement runs, and fails as it must (42501),
--    instead of the table being read below SQL; with the right back, the rows are computed
--    below SQL again.
CREATE ROLE rb_reader;
CREATE TABLE racct (id int PRIMARY KEY);
CREATE TABLE secret (acct_id int PRIMARY KEY, code int);
INSERT INTO racct SELECT g FROM generate_series(1, 40) g;
INSERT INTO secret SELECT g, g % 4 FROM generate_series(1, 40, 2) g;
ALTER TABLE racct OWNER TO rb_reader;
GRANT SELECT, TRIGGER ON secret TO rb_reader;
GRANT USAGE, CREATE ON SCHEMA rb TO rb_reader;
SET ROLE rb_reader;
SELECT mk('hidden', 'SELECT a.id, s.code FROM rb.racct a LEFT JOIN rb.secret s ON s.acct_id = a.id');
RESET ROLE;
REVOKE SELECT ON secret FROM rb_reader;
CALL try('UPDATE rb.secret SET code = code + 1 WHERE acct_id < 10');
SELECT took('rows computed%');
GRANT SELECT, TRIGGER ON secret TO rb_reader;
UPDATE secret SET code = code + 1 WHERE acct_id < 10;
SELECT took('rows computed%');
SELECT chk_all();
DROP VIEW o_hidden;
SELECT ivm.drop_view('hidden');

-- 5. The compiled expressions follow their functions: a SQL function the view calls (inlined
--    when planned) is replaced, and the next change computes with the new body, as a
--    statement planned again would.  (Under REPEATABLE READ the view is written by one SQL
--    statement, which computes the rows itself.)
CREATE FUNCTION tag(t text) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT t || '!' $$;
SELECT mk('tagged', 'SELECT id, rb.tag(name) AS t FROM acct WHERE id < 5');
UPDATE acct SET name = 'a' WHERE id = 1;
SELECT t FROM tagged WHERE id = 1;
CREATE OR REPLACE FUNCTION tag(t text) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT t || '?' $$;
UPDATE acct SET name = 'b' WHERE id = 1;
SELECT t FROM tagged WHERE id = 1;
SELECT ivm.refresh('tagged');
SELECT took('rows computed%');
BEGIN ISOLATION LEVEL REPEATABLE READ;
UPDATE acct SET name = 'c' WHERE id = 2;
COMMIT;
SELECT took('rows computed%');
SELECT chk_all();

DROP SCHEMA rb CASCADE;
RESET search_path;
SELECT ivm_leftovers();
DROP ROLE rb_reader;

-- The ivm output plugin through the SQL interface (pg_logical_slot_get_changes).
-- Needs wal_level = logical (and ivm in output_plugin_libraries where the server has
-- that setting): test/decode.sh runs it on a cluster of its own.
CREATE EXTENSION ivm;
SET TimeZone = 'UTC';
SET client_min_messages = warning;

-- Transaction records carry values that change from run to run: masked.
-- The changes of each transaction are shown sorted (begin first, commit last):
-- rows a statement changes together may reach the stream in any order.
CREATE FUNCTION changes(VARIADIC options text[] DEFAULT '{}') RETURNS SETOF text
LANGUAGE sql AS $$
    SELECT d FROM (
        SELECT d, n, sum(CASE WHEN d LIKE '{"op":"begin"%' THEN 1 ELSE 0 END) OVER (ORDER BY n) AS t
        FROM (SELECT regexp_replace(data, '"xid":[0-9]+,"commit_lsn":"[0-9A-F]+/[0-9A-F]+","commit_time":"[^"]+"',
                                    '"xid":X,"commit_lsn":"L","commit_time":"T"') AS d,
                     row_number() OVER () AS n
              FROM pg_logical_slot_get_changes('s', NULL, NULL, VARIADIC options)) raw) x
    ORDER BY t, CASE WHEN d LIKE '{"op":"begin"%' THEN 0 WHEN d LIKE '{"op":"commit"%' THEN 2 ELSE 1 END, d
$$;

CREATE TABLE items (
    id int PRIMARY KEY,
    name text,
    price numeric,
    weight float8,
    big bigint,
    active boolean,
    added timestamp,
    added_tz timestamptz,
    day date,
    at_time time,
    wait interval,
    tags text[],
    attrs jsonb,
    category int
);
CREATE TABLE unrelated (x int);

-- The slot exists before the views: their first filling is streamed too.
SELECT 'slot' FROM pg_create_logical_replication_slot('s', 'ivm');

SELECT 'v' FROM ivm.create_view('item_copy', 'SELECT * FROM items');
SELECT 'v' FROM ivm.create_view('by_category', $$
    SELECT category, count(*) AS n, sum(price) AS total FROM items GROUP BY category $$);
-- A subquery in FROM is an internal view (schema ivm_state): never streamed.
SELECT 'v' FROM ivm.create_view('expensive', $$
    SELECT s.id, s.name FROM (SELECT id, name, price FROM items WHERE price > 100) s $$);
SELECT changes();

-- Typed values: numbers as numbers (NaN and infinities as strings), booleans,
-- ISO-8601 times, arrays, json, NULL, and text escaped.
INSERT INTO items VALUES
    (1, 'plain', 12.50, 0.25, 9007199254740993, true, '2026-04-01 10:00:00', '2026-04-01 10:00:00+02',
     '2026-04-01', '10:30:00', '1 day 2 hours', '{a,"b c",NULL}', '{"k": [1, 2.5, null, "x"]}', 1),
    (2, E'quote " backslash \\ newline \n tab \t bell \007 unicode é ✓', 'NaN', 'Infinity', -1, false,
     'infinity', '-infinity', NULL, NULL, NULL, '{}', 'null', 1),
    (3, NULL, 1e20, -1.5e-7, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
SELECT changes('views', 'item_copy');

-- Several views in one transaction; an aggregate row updated in place carries
-- its old and new values.  include-base adds the table the views read, with
-- the old key of a deleted row; unrelated tables never appear.
BEGIN;
UPDATE items SET price = 20, category = 2 WHERE id = 1;
DELETE FROM items WHERE id = 3;
INSERT INTO unrelated VALUES (1);
COMMIT;
SELECT changes('views', 'by_category, public.expensive', 'include-base', 'true');

-- Rolled back: nothing.  A rolled-back savepoint: only the rest.  Without
-- option views, every view is streamed (not the internal one behind expensive).
BEGIN;
INSERT INTO items (id, name, price, category) VALUES (10, 'rolled back', 500, 7);
ROLLBACK;
BEGIN;
INSERT INTO items (id, name, price, category) VALUES (11, 'kept', 150, 7);
SAVEPOINT sp;
INSERT INTO items (id, name, price, category) VALUES (12, 'rolled back too', 600, 7);
ROLLBACK TO SAVEPOINT sp;
COMMIT;
-- A transaction touching nothing streamed emits no begin/commit either.
INSERT INTO unrelated VALUES (2);
SELECT changes();

-- TRUNCATE of a base table: the views are rebuilt, which streams as row changes.
TRUNCATE items;
SELECT changes('views', 'by_category', 'include-base', 'on');

-- A view dropped mid-stream stops being streamed; a view created later starts
-- (and warns, once, that it does not exist yet where decoding starts).
INSERT INTO items (id, name, price, category) VALUES (20, 'before drop', 300, 1);
SELECT ivm.drop_view('expensive');
SELECT 'v' FROM ivm.create_view('names', 'SELECT id, upper(name) AS name FROM items');
INSERT INTO items (id, name, price, category) VALUES (21, 'after', 200, 1);
SELECT changes('views', 'expensive,names');

-- Names are read as SQL reads them: unquoted ones fold to lower case.
UPDATE items SET name = 'renamed' WHERE id = 21;
SELECT count(*) FROM pg_logical_slot_peek_changes('s', NULL, NULL, 'views', '"Item_Copy"');
SELECT changes('views', 'PUBLIC.ITEM_COPY', 'format', 'json');

-- A deferred view changes, and streams, when its changes are applied; the delta
-- table where they wait is never streamed.
SELECT ivm.set_mode('by_category', 'deferred');
INSERT INTO items (id, name, price, category) VALUES (30, 'deferred', 5, 3);
SELECT changes('views', 'by_category');
SELECT ivm.apply_deltas() > 0 AS applied;
SELECT changes();

-- A large group key that an in-place update leaves alone reaches decoding as a
-- pointer into the TOAST table: the value comes from the old row.
CREATE TABLE docs (body text, n int);
SELECT 'v' FROM ivm.create_view('doc_totals', 'SELECT body, sum(n) AS total FROM docs GROUP BY body');
INSERT INTO docs SELECT string_agg(md5(i::text), ''), 1 FROM generate_series(1, 75) i;
INSERT INTO docs SELECT body, 2 FROM docs;
SELECT j->>'op' AS op, length(j->'old'->>'body') AS old_body, length(j->'new'->>'body') AS new_body,
       j->'old'->'total' AS old_total, j->'new'->'total' AS new_total
FROM (SELECT data::jsonb AS j FROM pg_logical_slot_get_changes('s', NULL, NULL, 'views', 'doc_totals')) c
WHERE j ? 'view';

-- Options are checked.
SELECT changes('colour', 'blue');
SELECT changes('format', 'xml');
SELECT changes('include-base', 'maybe');
SELECT changes('views', 'a,,b');
SELECT changes('views', 'a.b.c');
SELECT changes('views', '"unterminated');

-- View tables log their whole old rows: consumers need them to replay deletes.
SELECT relname, relreplident FROM pg_class WHERE relname IN ('item_copy', 'by_category', 'names') ORDER BY 1;
SELECT 'dropped' FROM pg_drop_replication_slot('s');

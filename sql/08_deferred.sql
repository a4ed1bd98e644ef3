-- 08_deferred: deferred mode.  Writers only append the columns deferred views read of their
-- transition rows to one delta table
-- per base relation (ivm_state.delta_<relid>, listed in ivm.delta_tables); ivm.apply_deltas()
-- consumes and consolidates them in one snapshot and maintains every deferred view (and the
-- views downstream of them).  Covered: aggregate, join and view-over-view deferred views, an
-- immediate view over a deferred one, staleness before / exactness after an apply,
-- consolidation (the return value), apply_deltas(one view), two views sharing a base table,
-- rolled back writers, TRUNCATE, create_view / set_mode / drop_view with pending changes and
-- what they do to ivm.delta_tables, ivm.status; then a partial apply with pending changes of
-- another input (10), a view switched to deferred with changes still waiting in its own delta
-- table (11), refresh() under a deferred reader (12), quoted columns and DROP/ADD COLUMN (13), an
-- immediate view's change recorded for a deferred reader, its columns found by name (14).
SET datestyle = 'ISO, MDY';
\set VERBOSITY terse
CREATE SCHEMA deferred;
SET search_path = deferred, public;

-- mkd(name, query): like mk(), for a deferred view (and its oracle o_name).
CREATE FUNCTION mkd(name text, query text) RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
    v regclass;
BEGIN
    v := ivm.create_view(name, query, mode => 'deferred');
    EXECUTE format('CREATE VIEW %I AS %s', 'o_' || name, query);
    RETURN v;
END
$$;

-- st(): the stable columns of ivm.status for this schema's views.
CREATE FUNCTION st() RETURNS TABLE (view text, mode text, pending_changes bigint, applies bigint)
LANGUAGE sql AS $$
    SELECT s.view::text, s.mode, s.pending_changes, s.applies
    FROM ivm.status s JOIN pg_class c ON c.oid = s.view
    WHERE c.relnamespace = current_schema()::regnamespace
    ORDER BY 1
$$;

-- stale(): for each deferred view of this schema, whether it differs from its query now.
CREATE FUNCTION stale() RETURNS TABLE (view text, stale boolean)
LANGUAGE sql AS $$
    SELECT c.relname::text, ivm.verify(c.oid::regclass::text) > 0
    FROM ivm.views v JOIN pg_class c ON c.oid = v.viewid
    WHERE c.relnamespace = current_schema()::regnamespace AND v.mode = 'deferred' AND NOT v.internal
    ORDER BY 1
$$;

-- deltas(): the relations of this schema that have a delta table, and that table's name
-- follows the documented pattern.
CREATE FUNCTION deltas() RETURNS TABLE (relation text, columns text[], name_ok boolean)
LANGUAGE sql AS $$
    SELECT d.relid::regclass::text, d.columns, d.name = 'ivm_state.delta_' || d.relid::oid
           AND to_regclass(d.name) IS NOT NULL
    FROM ivm.delta_tables d JOIN pg_class c ON c.oid = d.relid
    WHERE c.relnamespace = current_schema()::regnamespace
    ORDER BY 1
$$;

CREATE TABLE customers (customer_id int PRIMARY KEY, full_name varchar, account_tier varchar);
CREATE TABLE orders (order_id int PRIMARY KEY, customer_id int, order_total numeric,
                     order_status varchar, created_at timestamp);
CREATE TABLE support_tickets (ticket_id int PRIMARY KEY, customer_id int, priority varchar,
                              status varchar);

INSERT INTO customers VALUES (1, 'Alice Johnson', 'premium'), (2, 'Bob Smith', 'standard'),
                             (3, 'Carol Davis', 'premium');
INSERT INTO orders VALUES
(101, 1, 299.99, 'completed', '2026-03-15 11:00:00'),
(102, 1, 149.50, 'completed', '2026-03-20 14:00:00'),
(103, 1, 89.99, 'shipped', '2026-03-28 09:00:00'),
(104, 2, 599.00, 'completed', '2026-03-10 16:00:00'),
(105, 2, 45.00, 'cancelled', '2026-03-25 10:00:00'),
(106, 3, 1250.00, 'completed', '2026-03-01 08:00:00'),
(107, 3, 320.00, 'completed', '2026-03-18 12:00:00');
INSERT INTO support_tickets VALUES (1001, 1, 'medium', 'resolved'), (1002, 2, 'high', 'open'),
                                   (1003, 2, 'high', 'resolved'), (1004, 3, 'low', 'resolved');

-- A deferred aggregate, a deferred join, a deferred view over the deferred aggregate, an
-- immediate view over the deferred aggregate, and a deferred aggregate of another table.
SELECT mkd('order_summary', $$
SELECT customer_id, count(*) AS total_orders,
       sum(CASE WHEN order_status = 'completed' THEN order_total ELSE 0 END) AS total_spent,
       avg(order_total) AS avg_order_value, max(created_at) AS last_order_at
FROM orders GROUP BY customer_id $$);
SELECT mkd('customer_orders', $$
SELECT c.customer_id, c.full_name, o.order_id, o.order_total, o.order_status
FROM customers c JOIN orders o ON o.customer_id = c.customer_id $$);
SELECT ivm.create_view('customer_360', $$
SELECT c.customer_id, c.full_name, c.account_tier, coalesce(s.total_orders, 0) AS total_orders,
       coalesce(s.total_spent, 0) AS lifetime_value
FROM customers c LEFT JOIN order_summary s ON s.customer_id = c.customer_id $$, 'deferred');
CREATE VIEW o_customer_360 AS
SELECT c.customer_id, c.full_name, c.account_tier, coalesce(s.total_orders, 0) AS total_orders,
       coalesce(s.total_spent, 0) AS lifetime_value
FROM customers c LEFT JOIN o_order_summary s ON s.customer_id = c.customer_id;
SELECT ivm.create_view('big_spenders',
    'SELECT customer_id, total_spent FROM order_summary WHERE total_spent > 500');
CREATE VIEW o_big_spenders AS
    SELECT customer_id, total_spent FROM o_order_summary WHERE total_spent > 500;
SELECT mkd('ticket_summary', $$
SELECT customer_id, count(*) AS tickets,
       sum(CASE WHEN status = 'open' THEN 1 ELSE 0 END) AS open_tickets
FROM support_tickets GROUP BY customer_id $$);

-- The catalog: modes and levels; one delta table per relation a deferred view reads
-- (order_summary has one too: customer_360 is deferred and reads it).
SELECT name, mode, level FROM ivm.views WHERE name LIKE 'deferred.%' ORDER BY level, name;
SELECT * FROM deltas();
-- Filled at creation: everything exact, nothing pending.
SELECT chk_all();
SELECT * FROM st();

-- 1. DML leaves the deferred views stale (and the immediate view over a deferred one
-- unchanged) until an apply; the changes wait in the delta tables.
INSERT INTO orders VALUES (108, 2, 250.00, 'completed', '2026-04-01 10:00:00'),
                          (109, 4, 10.00, 'shipped', '2026-04-02 10:00:00');
UPDATE orders SET order_total = 1300.00 WHERE order_id = 106;
DELETE FROM orders WHERE order_id = 105;
INSERT INTO customers VALUES (4, 'Dan Brown', 'standard');
UPDATE support_tickets SET status = 'resolved' WHERE ticket_id = 1002;
SELECT * FROM stale();
SELECT * FROM st();
TABLE big_spenders ORDER BY customer_id;
-- Writers see their own base changes, not yet the view's.
SELECT total_orders FROM order_summary WHERE customer_id = 2;
SELECT ivm.apply_deltas();
SELECT chk_all();
SELECT * FROM st();
TABLE order_summary ORDER BY customer_id;
TABLE customer_360 ORDER BY customer_id;
TABLE big_spenders ORDER BY customer_id;
-- Nothing left: a second apply changes nothing.
SELECT ivm.apply_deltas();
SELECT chk_all();

-- 2. Consolidation.  An insert then a delete of the same row cancel: 2 pending changes,
-- 0 view rows changed.
INSERT INTO orders VALUES (110, 1, 5.00, 'shipped', '2026-04-03 10:00:00');
DELETE FROM orders WHERE order_id = 110;
SELECT * FROM st() WHERE view = 'order_summary';
SELECT ivm.apply_deltas();
SELECT chk_all();
-- 50 updates of one ticket that end where they started: 100 pending changes, nothing to do.
DO $$ BEGIN
    FOR i IN 1..50 LOOP
        UPDATE support_tickets SET priority = CASE WHEN i % 2 = 1 THEN 'high' ELSE 'low' END
        WHERE ticket_id = 1004;
    END LOOP;
END $$;
SELECT * FROM st() WHERE view = 'ticket_summary';
SELECT ivm.apply_deltas();
-- 50 updates of one ticket with a net change (it ends up open): one net change of the
-- ticket, so one ticket_summary row replaced (2 view rows changed: old out, new in).
DO $$ BEGIN
    FOR i IN 1..50 LOOP
        UPDATE support_tickets SET status = CASE WHEN i % 2 = 0 THEN 'open' ELSE 'resolved' END,
                                   priority = 'p' || i
        WHERE ticket_id = 1004;
    END LOOP;
END $$;
SELECT * FROM st() WHERE view = 'ticket_summary';
SELECT ivm.apply_deltas();
SELECT chk_all();
TABLE ticket_summary ORDER BY customer_id;
-- Several statements in one transaction consolidate the same way.
BEGIN;
INSERT INTO support_tickets VALUES (1005, 3, 'low', 'open');
UPDATE support_tickets SET status = 'resolved' WHERE ticket_id = 1005;
DELETE FROM support_tickets WHERE ticket_id = 1005;
COMMIT;
SELECT ivm.apply_deltas();
SELECT chk_all();

-- 3. apply_deltas(one view): applies the relations that view reads (and feeds every deferred
-- view reading them); views over other relations stay stale.
INSERT INTO support_tickets VALUES (1006, 1, 'high', 'open');
INSERT INTO orders VALUES (111, 3, 42.00, 'completed', '2026-04-04 10:00:00');
SELECT ivm.apply_deltas('ticket_summary');
-- (verify compares a view with its query over its inputs as they are: customer_360 is exact
-- with respect to the stale order_summary; o_customer_360 would show the difference.)
SELECT * FROM stale();
SELECT * FROM st();
SELECT * FROM chk('ticket_summary');
-- customer_360 reads orders through order_summary: applying it applies orders, which also
-- feeds order_summary and customer_orders (they share the delta table of orders).
SELECT ivm.apply_deltas('customer_360');
SELECT * FROM st();
SELECT chk_all();
-- Unknown names are refused.
CALL try($$SELECT ivm.apply_deltas('nosuch')$$);

-- 4. Two deferred views sharing a base table get every change exactly once, whichever of
-- them is applied first; a later global apply finds nothing left.
INSERT INTO orders VALUES (112, 1, 1.00, 'completed', '2026-04-05 10:00:00'),
                          (113, 3, 2.00, 'cancelled', '2026-04-05 11:00:00');
UPDATE orders SET order_status = 'completed' WHERE order_id = 103;
DELETE FROM orders WHERE order_id = 101;
SELECT ivm.apply_deltas('customer_orders');
SELECT * FROM chk('order_summary', 'customer_orders');
SELECT ivm.apply_deltas('order_summary');
SELECT ivm.apply_deltas();
SELECT chk_all();
SELECT customer_id, count(*) AS orders, sum(order_total) AS total
FROM customer_orders GROUP BY customer_id ORDER BY customer_id;

-- 5. A rolled back writer leaves no pending change (the delta rows roll back with it),
-- also for a rolled back savepoint inside a committed transaction.
BEGIN;
INSERT INTO orders VALUES (114, 2, 99.00, 'completed', '2026-04-06 10:00:00');
UPDATE customers SET full_name = 'Robert Smith' WHERE customer_id = 2;
SELECT * FROM st();
ROLLBACK;
SELECT * FROM st();
BEGIN;
INSERT INTO orders VALUES (115, 2, 11.00, 'completed', '2026-04-06 11:00:00');
SAVEPOINT s;
INSERT INTO orders VALUES (116, 2, 12.00, 'completed', '2026-04-06 12:00:00');
DELETE FROM orders WHERE order_id = 104;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT * FROM st() WHERE view = 'order_summary';
SELECT ivm.apply_deltas();
SELECT chk_all();

-- 6. TRUNCATE of a base table becomes deletions of all its rows in the delta table.
SELECT count(*) AS tickets FROM support_tickets;
TRUNCATE support_tickets;
SELECT * FROM st() WHERE view = 'ticket_summary';
SELECT * FROM stale();
SELECT ivm.apply_deltas();
SELECT chk_all();
TABLE ticket_summary;
-- Rows inserted in the same transaction before the TRUNCATE cancel out; those inserted
-- after it stay.
BEGIN;
INSERT INTO support_tickets VALUES (2001, 1, 'low', 'open'), (2002, 2, 'low', 'open');
TRUNCATE support_tickets;
INSERT INTO support_tickets VALUES (2003, 3, 'high', 'open');
COMMIT;
SELECT ivm.apply_deltas();
SELECT chk_all();
TABLE ticket_summary;
-- A rolled back TRUNCATE leaves nothing pending.
BEGIN;
TRUNCATE support_tickets;
ROLLBACK;
SELECT * FROM st() WHERE view = 'ticket_summary';
-- TRUNCATE of a table read by deferred views and an immediate one (order_count).
SELECT mk('order_count', 'SELECT count(*) AS n, sum(order_total) AS total FROM orders');
TRUNCATE orders;
SELECT * FROM chk('order_count');
SELECT * FROM stale();
SELECT ivm.apply_deltas();
SELECT chk_all();
TABLE customer_360 ORDER BY customer_id;
INSERT INTO orders VALUES
(201, 1, 300.00, 'completed', '2026-04-07 10:00:00'),
(202, 2, 700.00, 'completed', '2026-04-07 11:00:00'),
(203, 3, 20.00, 'shipped', '2026-04-07 12:00:00'),
(204, 2, 5.00, 'cancelled', '2026-04-07 13:00:00');
SELECT ivm.apply_deltas();
SELECT chk_all();
TABLE big_spenders ORDER BY customer_id;

-- 7. set_mode with pending changes: nothing is lost in either direction.
-- deferred -> immediate: the pending changes are applied during the switch.
INSERT INTO orders VALUES (205, 1, 400.00, 'completed', '2026-04-08 10:00:00');
UPDATE orders SET order_total = 800.00 WHERE order_id = 202;
SELECT * FROM stale();
SELECT ivm.set_mode('order_summary', 'immediate');
-- order_summary is exact; customer_orders shared the delta table of orders and got the same
-- changes; customer_360 (deferred) was handed order_summary's change.
SELECT * FROM st();
SELECT chk_all();
-- From now on order_summary is maintained by the writers; customer_360 still waits for its
-- copy of order_summary's changes in order_summary's delta table.
INSERT INTO orders VALUES (206, 3, 900.00, 'completed', '2026-04-08 11:00:00');
SELECT * FROM chk('order_summary', 'big_spenders');
SELECT * FROM stale();
SELECT * FROM st();
SELECT * FROM deltas();
-- Switching customer_orders too: no deferred view reads orders any more, its delta table
-- goes; the same for customers once customer_360 is immediate.
SELECT ivm.set_mode('customer_orders', 'immediate');
SELECT * FROM deltas();
SELECT ivm.set_mode('customer_360', 'immediate');
SELECT * FROM deltas();
SELECT chk_all();
SELECT * FROM st();
-- Setting the mode a view already has changes nothing; invalid modes are refused.
SELECT ivm.set_mode('order_summary', 'immediate');
CALL try($$SELECT ivm.set_mode('order_summary', 'bogus')$$);
CALL try($$SELECT ivm.set_mode('order_summary', 'wal')$$);
CALL try($$SELECT ivm.set_mode('nosuch', 'deferred')$$);
-- immediate -> deferred: the delta tables come back, later changes wait in them.
SELECT ivm.set_mode('order_summary', 'deferred');
SELECT ivm.set_mode('customer_orders', 'deferred');
SELECT * FROM deltas();
INSERT INTO orders VALUES (207, 4, 60.00, 'completed', '2026-04-09 10:00:00');
DELETE FROM orders WHERE order_id = 201;
SELECT * FROM stale();
SELECT * FROM st();
SELECT ivm.apply_deltas();
SELECT chk_all();
-- Entering deferred while another deferred view reading the same table has pending changes:
-- those changes are already in the switching view, so they are applied first and not
-- handed to it a second time.
SELECT ivm.set_mode('order_summary', 'immediate');
INSERT INTO orders VALUES (208, 1, 70.00, 'completed', '2026-04-09 11:00:00');
SELECT * FROM st() WHERE view IN ('order_summary', 'customer_orders');
SELECT ivm.set_mode('order_summary', 'deferred');
SELECT * FROM st() WHERE view IN ('order_summary', 'customer_orders');
SELECT chk_all();
INSERT INTO orders VALUES (209, 2, 80.00, 'completed', '2026-04-09 12:00:00');
SELECT ivm.apply_deltas();
SELECT chk_all();
-- A deferred view created while its input has pending changes (for other deferred views)
-- does not receive them a second time.
INSERT INTO orders VALUES (210, 3, 90.00, 'shipped', '2026-04-09 13:00:00');
SELECT mkd('order_statuses', 'SELECT order_status, count(*) AS n FROM orders GROUP BY order_status');
SELECT * FROM stale();
SELECT ivm.apply_deltas();
SELECT chk_all();

-- 8. ivm.status: the other columns.  Timestamps are not printed, only whether they are set.
UPDATE orders SET order_total = order_total + 1 WHERE order_id = 210;
SELECT view, mode, pending_changes > 0 AS pending, oldest_pending IS NOT NULL AS has_oldest,
       lag > interval '0' AS lagging, last_apply IS NOT NULL AS applied, last_duration >= interval '0' AS has_duration,
       applies > 0 AS has_applies, failures, last_error, last_error_at
FROM ivm.status WHERE view::text IN ('order_summary', 'customer_360', 'big_spenders', 'order_count')
ORDER BY view::text;
SELECT ivm.apply_deltas();
SELECT view, pending_changes, oldest_pending, lag, failures
FROM ivm.status WHERE view::text IN ('order_summary', 'customer_orders', 'order_statuses')
ORDER BY view::text;

-- 9. drop_view: a dropped deferred view's delta tables go when no deferred view needs them.
SELECT ivm.drop_view('order_statuses');
DROP VIEW o_order_statuses;
SELECT * FROM deltas();
DROP VIEW o_ticket_summary;
SELECT ivm.drop_view('ticket_summary');
SELECT * FROM deltas();
SELECT chk_all();

-- 10. apply_deltas(one view) while another deferred view reading the same table also has
-- pending changes of a table the named view does not read: customer_orders reads orders and
-- customers; applying order_summary consumes only the changes of orders.  customer_orders
-- must still come out exact once everything is applied (each change applied once: Eve's
-- order joined with Eve once).  (The numbers of rows changed are not printed: they depend on
-- which apply handles the join of the two new rows.)
INSERT INTO customers VALUES (5, 'Eve Adams', 'premium');
INSERT INTO orders VALUES (211, 5, 15.00, 'completed', '2026-04-10 10:00:00');
SELECT ivm.apply_deltas('order_summary') >= 0 AS applied;
SELECT ivm.apply_deltas() >= 0 AS applied;
SELECT chk_all();
SELECT * FROM customer_orders WHERE customer_id = 5;
SELECT view, mode, pending_changes FROM st();

-- 11. A view switched from immediate to deferred while its own delta table still holds changes
-- for a deferred view reading it: those changes and the view's own later changes must both
-- reach the reader.
CREATE TABLE s11 (k int, v int);
SELECT mk('s11_sum', 'SELECT k, sum(v) AS s FROM s11 GROUP BY k');
SELECT ivm.create_view('s11_over', 'SELECT k, s FROM s11_sum', 'deferred');
CREATE VIEW o_s11_over AS SELECT k, s FROM o_s11_sum;
INSERT INTO s11 VALUES (1, 1);       -- s11_sum maintained; its change waits for s11_over
SELECT ivm.set_mode('s11_sum', 'deferred');
INSERT INTO s11 VALUES (2, 2);       -- waits in the delta table of s11
SELECT ivm.apply_deltas() >= 0 AS applied;
SELECT * FROM chk('s11_sum', 's11_over');
TABLE s11_over ORDER BY k;

-- 12. refresh() of an immediate view read by a deferred view: the reader gets the rebuilt
-- view's change (at the latest with the next apply).  The change is made behind ivm's back
-- (session_replication_role = replica: no triggers), as in 06_api.
CREATE TABLE s12 (k int, v int);
SELECT mk('s12_cnt', 'SELECT k, count(*) AS n FROM s12 GROUP BY k');
SELECT ivm.create_view('s12_over', 'SELECT k, n FROM s12_cnt', 'deferred');
CREATE VIEW o_s12_over AS SELECT k, n FROM o_s12_cnt;
SET session_replication_role = replica;
INSERT INTO s12 VALUES (1, 1), (1, 2), (2, 3);
RESET session_replication_role;
SELECT ivm.refresh('s12_cnt');
SELECT ivm.apply_deltas() >= 0 AS applied;
SELECT * FROM chk('s12_cnt', 's12_over');
TABLE s12_over ORDER BY k;

-- 13. Quoted column names, and DDL on a base table: a column no view reads is dropped, another
-- one added; writers keep working and the deferred view stays right.
CREATE TABLE "Drop Cols" ("Key" int, "some value" int, unused int);
INSERT INTO "Drop Cols" VALUES (1, 10, 0), (2, 20, 0);
SELECT mkd('drop_sum', 'SELECT "Key", sum("some value") AS "Total" FROM "Drop Cols" GROUP BY "Key"');
INSERT INTO "Drop Cols" VALUES (1, 1, 1);
ALTER TABLE "Drop Cols" DROP COLUMN unused;
INSERT INTO "Drop Cols" VALUES (1, 5), (3, 7);
ALTER TABLE "Drop Cols" ADD COLUMN later int;
UPDATE "Drop Cols" SET "some value" = "some value" + 1, later = 1 WHERE "Key" = 2;
SELECT ivm.apply_deltas() >= 0 AS applied;
SELECT * FROM chk('drop_sum');
TABLE drop_sum ORDER BY "Key";
-- 14. An immediate view's change reaches the delta table of a deferred view reading it (written
-- straight from the change held in memory), its columns found by name: one named with a comma
-- and a quote, one the deferred view does not read, in another order than the view's.
CREATE TABLE s14 (k int, v int, w text);
SELECT mk('s14_sum', 'SELECT k, sum(v) AS "a,""b", max(w) AS unread, count(*) AS n FROM s14 GROUP BY k');
SELECT ivm.create_view('s14_over', 'SELECT n, "a,""b" AS ab, k FROM s14_sum WHERE n > 1', 'deferred');
CREATE VIEW o_s14_over AS SELECT n, "a,""b" AS ab, k FROM o_s14_sum WHERE n > 1;
SELECT columns FROM ivm.delta_tables WHERE relid = 's14_sum'::regclass;
INSERT INTO s14 VALUES (1, 1, 'x'), (1, 2, 'y'), (2, 5, 'z');
BEGIN;
UPDATE s14 SET v = v + 10 WHERE k = 1;
SAVEPOINT a;
INSERT INTO s14 VALUES (2, 7, 'q');
ROLLBACK TO a;
INSERT INTO s14 VALUES (2, 8, 'r'), (3, 1, NULL);
COMMIT;
DELETE FROM s14 WHERE v = 1;
SELECT ivm.apply_deltas() >= 0 AS applied;
SELECT * FROM chk('s14_sum', 's14_over');
TABLE s14_over ORDER BY k;
RESET search_path;

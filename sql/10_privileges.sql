-- 10_privileges: who may do what.
--
-- A view is created by a role that may read its base relations (SELECT) and attach the
-- view's maintenance to their changes (TRIGGER); the view table is that role's, and the
-- view is maintained with that role's rights whoever writes the base tables.  A writer
-- needs no privilege on the view and gets none: it cannot read the view, write it, or
-- touch ivm's catalog, state or delta tables.  Only the owner drops, refreshes or switches
-- a view.  Row-level security that applies to the view's owner is refused.  A search_path
-- full of traps cannot change what maintenance computes.
\set VERBOSITY terse
CREATE SCHEMA priv;
SET search_path = priv, public;
CREATE ROLE regress_ivm_app;       -- owns the tables
CREATE ROLE regress_ivm_analyst;   -- creates the views
CREATE ROLE regress_ivm_writer;    -- may only INSERT into orders
CREATE ROLE regress_ivm_reader;    -- may read one view
ALTER SCHEMA priv OWNER TO regress_ivm_app;
GRANT USAGE ON SCHEMA priv TO regress_ivm_analyst, regress_ivm_writer, regress_ivm_reader;
GRANT CREATE ON SCHEMA priv TO regress_ivm_analyst;

-- outcome(sql): 'ok', or the SQLSTATE sql failed with (for errors whose messages name
-- relations by oid).
CREATE FUNCTION outcome(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;

SET ROLE regress_ivm_app;
CREATE TABLE customers (customer_id int PRIMARY KEY, full_name text);
CREATE TABLE orders (order_id int PRIMARY KEY, customer_id int, order_total numeric,
                     order_status text);
CREATE TABLE payments (payment_id int, customer_id int, amount numeric);
INSERT INTO customers VALUES (1, 'Alice'), (2, 'Bob'), (3, 'Carol');
INSERT INTO orders VALUES (101, 1, 300, 'completed'), (102, 1, 150, 'completed'),
                          (103, 2, 600, 'completed'), (104, 3, 40, 'cancelled');
GRANT INSERT ON orders, payments TO regress_ivm_writer;
RESET ROLE;

-- 1. Creating a view needs SELECT, then TRIGGER, on every relation it reads (42501, naming
-- the relation and the grant that is missing).
\set VERBOSITY default
SET ROLE regress_ivm_analyst;
CALL try($$SELECT ivm.create_view('order_summary', 'SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id')$$);
SET ROLE regress_ivm_app;
GRANT SELECT ON orders, customers, payments TO regress_ivm_analyst;
SET ROLE regress_ivm_analyst;
CALL try($$SELECT ivm.create_view('order_summary', 'SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id')$$);
SET ROLE regress_ivm_app;
GRANT TRIGGER ON orders, customers, payments TO regress_ivm_analyst;
SET ROLE regress_ivm_analyst;
\set VERBOSITY terse
SELECT ivm.create_view('order_summary', $$
    SELECT customer_id, count(*) AS total_orders, sum(order_total) AS total_spent,
           max(order_total) AS biggest_order
    FROM orders GROUP BY customer_id $$);
SELECT ivm.create_view('customer_360', $$
    SELECT c.customer_id, c.full_name, coalesce(o.total_orders, 0) AS total_orders,
           coalesce(o.total_spent, 0) AS lifetime_value
    FROM customers c LEFT JOIN order_summary o ON c.customer_id = o.customer_id $$);
SELECT ivm.create_view('order_stats', $$
    SELECT order_status, count(*) AS n, avg(order_total) AS avg_total
    FROM orders GROUP BY order_status $$, mode => 'deferred');
-- Only deferred views read payments: a write appends its rows to the delta table directly.
SELECT ivm.create_view('payment_totals', $$
    SELECT customer_id, sum(amount) AS paid FROM payments GROUP BY customer_id $$, mode => 'deferred');
SELECT ivm.create_view('big_spenders', $$
    SELECT s.customer_id, s.spent
    FROM (SELECT customer_id, sum(order_total) AS spent FROM orders GROUP BY customer_id) s
    WHERE s.spent > 400 $$);
-- Only ivm creates objects in ivm_state.
CALL try($$SELECT ivm.create_view('ivm_state.mine', 'SELECT order_id FROM orders')$$);
RESET ROLE;
CREATE VIEW o_order_summary AS
    SELECT customer_id, count(*) AS total_orders, sum(order_total) AS total_spent,
           max(order_total) AS biggest_order
    FROM orders GROUP BY customer_id;
CREATE VIEW o_customer_360 AS
    SELECT c.customer_id, c.full_name, coalesce(o.total_orders, 0) AS total_orders,
           coalesce(o.total_spent, 0) AS lifetime_value
    FROM customers c LEFT JOIN o_order_summary o ON c.customer_id = o.customer_id;
CREATE VIEW o_order_stats AS
    SELECT order_status, count(*) AS n, avg(order_total) AS avg_total
    FROM orders GROUP BY order_status;
CREATE VIEW o_payment_totals AS
    SELECT customer_id, sum(amount) AS paid FROM payments GROUP BY customer_id;
CREATE VIEW o_big_spenders AS
    SELECT s.customer_id, s.spent
    FROM (SELECT customer_id, sum(order_total) AS spent FROM orders GROUP BY customer_id) s
    WHERE s.spent > 400;
SELECT chk_all();

-- The view tables, and the internal view and state tables ivm made for them, are the
-- analyst's; the delta table of orders is ivm's (the owner of its catalog).
SELECT v.name, c.relowner::regrole AS owner
FROM ivm.views v JOIN pg_class c ON c.oid = v.viewid
WHERE v.name LIKE 'priv.%' ORDER BY 1;
SELECT count(*) AS internal_views, bool_and(c.relowner = 'regress_ivm_analyst'::regrole) AS analysts
FROM ivm.views v JOIN pg_class c ON c.oid = v.viewid JOIN ivm.views p ON p.viewid = v.parent
WHERE p.name = 'priv.big_spenders';
SELECT regexp_replace(relname, '[0-9]+', 'N', 'g') AS state_relation, count(*)
FROM pg_class WHERE relnamespace = 'ivm_state'::regnamespace AND relkind = 'r'
  AND relowner = 'regress_ivm_analyst'::regrole
GROUP BY 1 ORDER BY 1;
SELECT c.relowner = (SELECT relowner FROM pg_class WHERE oid = 'ivm.views'::regclass) AS ivm_owns_delta_table
FROM ivm.delta_tables d JOIN pg_class c ON c.oid = to_regclass(d.name)
WHERE d.relid = 'orders'::regclass;

-- 2. Maintenance runs as the view's owner: a trigger of the analyst on its view table sees
-- the analyst as current_user when the writer's INSERT maintains the view.
SET ROLE regress_ivm_analyst;
CREATE TABLE maintained_by (who name);
CREATE FUNCTION note_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO priv.maintained_by VALUES (current_user);
    RETURN NULL;
END
$$;
CREATE TRIGGER note_user AFTER INSERT OR UPDATE ON order_summary
    FOR EACH STATEMENT EXECUTE FUNCTION note_user();
RESET ROLE;

-- 3. The writer may INSERT into orders: every view follows (the deferred one when deltas are
-- applied, which anyone may ask for), though the writer holds no privilege on any of them.
SET ROLE regress_ivm_writer;
INSERT INTO orders VALUES (105, 2, 80, 'completed'), (106, 4, 500, 'completed');
INSERT INTO orders VALUES (107, 3, 20, 'cancelled');
INSERT INTO payments VALUES (1, 1, 100), (2, 2, 50);
INSERT INTO payments VALUES (3, 1, 25);
-- One statement writing two tables: maintained when it ends, with the same rights.
WITH o AS (INSERT INTO orders VALUES (108, 3, 90, 'completed'))
INSERT INTO payments VALUES (4, 3, 90);
SELECT ivm.apply_deltas() > 0 AS applied;
RESET ROLE;
SELECT chk_all();
SELECT DISTINCT who FROM priv.maintained_by;

-- ... and gets nothing else: it cannot read the views, write them, write ivm's state,
-- delta or catalog tables, or drop, refresh, switch or verify a view.
SET ROLE regress_ivm_writer;
CALL try('SELECT * FROM customer_360');
CALL try('DELETE FROM customer_360');
SELECT outcome(format('INSERT INTO %s (__m) VALUES (1)', name)) AS write_delta_table
FROM ivm.delta_tables WHERE relid = 'orders'::regclass;
SELECT outcome(format('DELETE FROM ivm_state.%I', c.relname)) AS write_state_table
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'ivm_state' AND c.relowner = 'regress_ivm_analyst'::regrole AND c.relname LIKE 's\_%'
ORDER BY 1 LIMIT 1;
CALL try($$UPDATE ivm.views SET mode = 'deferred'$$);
CALL try($$DELETE FROM ivm.dependencies$$);
CALL try($$SELECT nextval('ivm.internal_seq')$$);
CALL try($$SELECT ivm.refresh('customer_360')$$);
CALL try($$SELECT ivm.drop_view('customer_360')$$);
CALL try($$SELECT ivm.set_mode('order_summary', 'deferred')$$);
CALL try($$SELECT ivm.verify('customer_360')$$);
RESET ROLE;
-- ivm.status shows an apply's error (which may quote data) only to roles that may read the view.
UPDATE ivm.apply_stats SET failures = 1, last_error = 'value 42 of customer 7 failed'
WHERE viewid = 'order_stats'::regclass;
SELECT s.view, s.failures, s.last_error FROM ivm.status s WHERE s.view = 'order_stats'::regclass;
SET ROLE regress_ivm_writer;
CALL try('SELECT * FROM ivm.apply_stats');
SELECT s.view, s.failures, s.last_error FROM ivm.status s WHERE s.view = 'order_stats'::regclass;
RESET ROLE;
UPDATE ivm.apply_stats SET failures = 0, last_error = NULL WHERE viewid = 'order_stats'::regclass;

-- Even with the privilege to write a view table, users cannot change it (42809) ...
SET ROLE regress_ivm_analyst;
GRANT INSERT, DELETE ON customer_360 TO regress_ivm_writer;
SET ROLE regress_ivm_writer;
CALL try('DELETE FROM customer_360');
-- ... nor can code running during a view's maintenance change another view: the owner's
-- trigger on order_summary that writes customer_360 makes the writer's INSERT fail.
SET ROLE regress_ivm_analyst;
CREATE FUNCTION poke() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM priv.customer_360 WHERE false;
    RETURN NULL;
END
$$;
CREATE TRIGGER poke AFTER INSERT OR UPDATE ON order_summary FOR EACH STATEMENT EXECUTE FUNCTION poke();
SET ROLE regress_ivm_writer;
CALL try($$INSERT INTO orders VALUES (113, 1, 10, 'completed')$$);
SET ROLE regress_ivm_analyst;
DROP TRIGGER poke ON order_summary;
REVOKE INSERT, DELETE ON customer_360 FROM regress_ivm_writer;

-- The TRIGGER privilege does not let a role feed the views a change twice: ivm.capture()
-- fires only from ivm's own triggers, and create_view refuses a foreign trigger under
-- ivm's name.
CREATE TRIGGER twice AFTER INSERT ON orders REFERENCING NEW TABLE AS ivm_new
    FOR EACH STATEMENT EXECUTE FUNCTION ivm.capture();
SET ROLE regress_ivm_writer;
CALL try($$INSERT INTO orders VALUES (113, 1, 10, 'completed')$$);
SET ROLE regress_ivm_app;
DROP TRIGGER twice ON orders;
CREATE TABLE refunds (refund_id int, amount numeric);
GRANT SELECT, TRIGGER ON refunds TO regress_ivm_analyst;
SET ROLE regress_ivm_analyst;
CREATE TRIGGER ivm_capture_ins AFTER INSERT ON refunds FOR EACH STATEMENT EXECUTE FUNCTION ivm.capture();
\set VERBOSITY default
CALL try($$SELECT ivm.create_view('refund_total', 'SELECT sum(amount) AS total FROM refunds')$$);
\set VERBOSITY terse
SET ROLE regress_ivm_app;
DROP TRIGGER ivm_capture_ins ON refunds;
SET ROLE regress_ivm_analyst;

-- 4. A reader granted SELECT on customer_360 reads it, and may verify it (evaluated with the
-- owner's rights: the reader cannot read the base tables itself).
GRANT SELECT ON customer_360 TO regress_ivm_reader;
SET ROLE regress_ivm_reader;
SELECT * FROM customer_360 ORDER BY customer_id;
SELECT ivm.verify('customer_360');
CALL try('SELECT * FROM orders');
CALL try('SELECT * FROM order_summary');

-- The owner may refresh, switch and drop its views.
SET ROLE regress_ivm_analyst;
SELECT ivm.refresh('order_summary');
SELECT ivm.set_mode('order_stats', 'immediate');
SELECT ivm.set_mode('order_stats', 'deferred');
RESET ROLE;
SELECT chk_all();

-- 5. A search_path full of traps: the writer's own schema, ahead of pg_catalog, holds an
-- int = int, numeric and bigint +/-, and sum, count, max and generate_series that all raise.
CREATE SCHEMA evil AUTHORIZATION regress_ivm_writer;
SET ROLE regress_ivm_writer;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE FUNCTION evil.trap_int(integer, integer) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'hijacked: integer ='; END $$;
CREATE OPERATOR evil.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = evil.trap_int);
CREATE FUNCTION evil.trap_numeric(numeric, numeric) RETURNS numeric LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'hijacked: numeric + or -'; END $$;
CREATE OPERATOR evil.+ (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = evil.trap_numeric);
CREATE OPERATOR evil.- (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = evil.trap_numeric);
CREATE FUNCTION evil.trap_bigint(bigint, bigint) RETURNS bigint LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'hijacked: bigint + or -'; END $$;
CREATE OPERATOR evil.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.trap_bigint);
CREATE OPERATOR evil.- (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.trap_bigint);
CREATE FUNCTION evil.trap_step(numeric, numeric) RETURNS numeric LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'hijacked: aggregate'; END $$;
CREATE AGGREGATE evil.sum(numeric) (SFUNC = evil.trap_step, STYPE = numeric);
CREATE AGGREGATE evil.max(numeric) (SFUNC = evil.trap_step, STYPE = numeric);
CREATE FUNCTION evil.trap_count(bigint) RETURNS bigint LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'hijacked: count'; END $$;
CREATE AGGREGATE evil.count(*) (SFUNC = evil.trap_count, STYPE = bigint);
CREATE FUNCTION evil.generate_series(integer, bigint) RETURNS SETOF integer LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'hijacked: generate_series'; END $$;
SET search_path = evil, priv, public, pg_catalog;
-- The traps are armed: statements resolved through this search_path meet them.
CALL try('SELECT 1 = 1');
CALL try('SELECT count(*) FROM pg_class');
-- Maintenance does not: its statements resolve in pg_catalog only.
INSERT INTO orders VALUES (109, 1, 250, 'completed'), (110, 3, 75, 'completed');
SELECT ivm.apply_deltas() > 0 AS applied;
-- The tables' owner, with the same search_path, updates and deletes (minimum, maximum and
-- outer-join keys recomputed).
SET ROLE regress_ivm_app;
UPDATE orders SET order_total = order_total * 3 WHERE order_id::text = '103';
DELETE FROM orders WHERE order_id::text IN ('101', '106');
UPDATE customers SET full_name = full_name || '!' WHERE customer_id::text = '2';
TRUNCATE payments;
SELECT ivm.apply_deltas() > 0 AS applied;
RESET ROLE;
SET search_path = priv, public;
SELECT chk_all();

-- 6. Row-level security.  Policies on orders that apply to the analyst (not the table's owner,
-- no BYPASSRLS) would filter the tables its views read but not the changes: writes that
-- its views must follow are refused (0A000), and a new view is refused too.
SET ROLE regress_ivm_app;
ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY small_customers ON orders USING (customer_id < 3);
\set VERBOSITY default
CALL try($$INSERT INTO orders VALUES (111, 1, 5, 'completed')$$);
SET ROLE regress_ivm_analyst;
CALL try($$SELECT ivm.create_view('rls_view', 'SELECT count(*) AS n FROM orders')$$);
\set VERBOSITY terse
SET ROLE regress_ivm_app;
ALTER TABLE orders DISABLE ROW LEVEL SECURITY;
INSERT INTO orders VALUES (111, 1, 5, 'completed');
RESET ROLE;
SELECT ivm.apply_deltas() > 0 AS applied;
SELECT chk_all();

-- The table's owner bypasses its own policies (unless it forces them): its view over a table
-- with row-level security holds every row, and GRANT on the view decides who reads them.
SET ROLE regress_ivm_app;
CREATE TABLE tickets (ticket_id int, customer_id int, status text);
INSERT INTO tickets VALUES (1, 1, 'open'), (2, 2, 'open'), (3, 3, 'closed');
ALTER TABLE tickets ENABLE ROW LEVEL SECURITY;
CREATE POLICY see_nothing ON tickets FOR SELECT USING (false);
CREATE POLICY insert_any ON tickets FOR INSERT WITH CHECK (true);
GRANT INSERT ON tickets TO regress_ivm_writer;
SELECT ivm.create_view('ticket_counts', 'SELECT status, count(*) AS n FROM tickets GROUP BY status');
SET ROLE regress_ivm_writer;
INSERT INTO tickets VALUES (4, 1, 'open'), (5, 3, 'open');
RESET ROLE;
CREATE VIEW o_ticket_counts AS SELECT status, count(*) AS n FROM tickets GROUP BY status;
SELECT * FROM ticket_counts ORDER BY status;
SELECT chk_all();
-- FORCE ROW LEVEL SECURITY makes the policies apply to the owner too: refused until lifted.
SET ROLE regress_ivm_app;
ALTER TABLE tickets FORCE ROW LEVEL SECURITY;
SET ROLE regress_ivm_writer;
CALL try($$INSERT INTO tickets VALUES (6, 2, 'closed')$$);
SET ROLE regress_ivm_app;
ALTER TABLE tickets NO FORCE ROW LEVEL SECURITY;
SET ROLE regress_ivm_writer;
INSERT INTO tickets VALUES (6, 2, 'closed');
RESET ROLE;
SELECT chk_all();

-- 7. Handing a view over: after ALTER TABLE ... OWNER TO, maintenance runs as the new owner,
-- which cannot use the state ivm keeps for the view (the aggregate state of payment_totals)
-- until ivm.refresh(), run by the new owner, hands that over too (with big_spenders, its
-- internal view).
RESET ROLE;
ALTER TABLE payment_totals OWNER TO regress_ivm_app;
ALTER TABLE big_spenders OWNER TO regress_ivm_app;
SET ROLE regress_ivm_writer;
INSERT INTO payments VALUES (14, 2, 10);
RESET ROLE;
SELECT outcome('SELECT ivm.apply_deltas()') AS apply_before_refresh;
SET ROLE regress_ivm_app;
SELECT ivm.refresh('payment_totals');
SELECT ivm.refresh('big_spenders');
SET ROLE regress_ivm_writer;
INSERT INTO payments VALUES (15, 3, 10);
INSERT INTO orders VALUES (112, 2, 500, 'completed');
RESET ROLE;
SELECT ivm.apply_deltas() > 0 AS applied;
SELECT chk_all();
SELECT count(*) AS internal_views, bool_and(c.relowner = 'regress_ivm_app'::regrole) AS apps
FROM ivm.views v JOIN pg_class c ON c.oid = v.viewid JOIN ivm.views p ON p.viewid = v.parent
WHERE p.name = 'priv.big_spenders';

-- The owner drops its views; nobody else could.
SET ROLE regress_ivm_analyst;
CALL try($$SELECT ivm.drop_view('big_spenders')$$);
SET ROLE regress_ivm_app;
SELECT ivm.drop_view('big_spenders');
SELECT count(*) AS internal_views_left FROM pg_class
WHERE relnamespace = 'ivm_state'::regnamespace AND relname LIKE 'sq\_%'
  AND relowner IN ('regress_ivm_app'::regrole, 'regress_ivm_analyst'::regrole);
RESET ROLE;

-- DDL by a role that cannot see the views' schema, on a table of its own: after an index,
-- a key or a drop, ivm proves the views' keys again (as the owner of its catalog), and the
-- DDL goes through.
CREATE ROLE regress_ivm_outsider;
CREATE SCHEMA outside AUTHORIZATION regress_ivm_outsider;
SET ROLE regress_ivm_outsider;
CREATE TABLE outside.t (id int, x int);
CREATE UNIQUE INDEX t_id ON outside.t (id);
ALTER TABLE outside.t ADD PRIMARY KEY (x);
DROP INDEX outside.t_id;
DROP TABLE outside.t;
RESET ROLE;
SELECT chk_all();

DROP SCHEMA priv, evil, outside CASCADE;
SELECT count(*) AS views_left FROM ivm.views WHERE name LIKE 'priv.%';
DROP OWNED BY regress_ivm_app, regress_ivm_analyst, regress_ivm_writer, regress_ivm_reader, regress_ivm_outsider;
DROP ROLE regress_ivm_app, regress_ivm_analyst, regress_ivm_writer, regress_ivm_reader, regress_ivm_outsider;
RESET search_path;

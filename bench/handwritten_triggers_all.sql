-- bench/handwritten_triggers_all.sql: the same reference as bench/handwritten_triggers.sql, for
-- all six views ivm keeps in bench/oltp's immediate configurations (f) and (h): the two
-- summaries of that file, then customer_web_activity, customer_360, customer_churn_risk and
-- churn_alerts (same columns and values as demo/views_ivm.sql) as plain tables.  Used by
-- bench/oltp, configuration (j): what a user would write by hand to keep all of them fresh.
--
-- After the summary triggers (hx_ sorts after hw_: they fire later), a row trigger
-- on orders and one on support_tickets recompute the changed customer's rows of customer_360,
-- customer_churn_risk and churn_alerts (one recomputation per changed row and customer), under
-- a lock of the customer (an advisory lock): an upsert of the customer_360 row from customers and the three summaries, an upsert of its
-- churn row, and its alert row deleted and inserted again if it qualifies.  The workload never
-- writes customers or web_activity, so they get no triggers (their rows would be recomputed
-- the same way).  bench_hw_verify_all() compares every table with its query.

\ir handwritten_triggers.sql

SET client_min_messages = warning;

-- The customer_web_activity query.
CREATE FUNCTION hw_web_activity() RETURNS TABLE (
    customer_id int, total_events bigint, total_sessions bigint, purchase_events bigint,
    cart_events bigint, last_active_at timestamp)
LANGUAGE sql STABLE AS $$
SELECT customer_id,
       COUNT(*),
       COUNT(DISTINCT session_id),
       SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END),
       SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END),
       MAX(created_at)
FROM web_activity
GROUP BY customer_id
$$;
CREATE TABLE customer_web_activity AS SELECT * FROM hw_web_activity();
ALTER TABLE customer_web_activity ADD PRIMARY KEY (customer_id);

-- The customer_360 query, for one customer or all (cid NULL).
CREATE FUNCTION hw_360(cid int) RETURNS TABLE (
    customer_id int, full_name varchar, email varchar, account_tier varchar, signup_date timestamp,
    total_orders bigint, completed_orders bigint, cancelled_orders bigint, lifetime_value numeric,
    avg_order_value numeric, last_order_at timestamp, total_tickets bigint, open_tickets bigint,
    high_priority_tickets bigint, last_ticket_at timestamp, total_web_events bigint,
    total_sessions bigint, purchase_events bigint, cart_events bigint, last_active_at timestamp,
    engagement_score bigint)
LANGUAGE sql STABLE AS $$
SELECT c.customer_id, c.full_name, c.email, c.account_tier, c.signup_date,
       COALESCE(o.total_orders, 0), COALESCE(o.completed_orders, 0), COALESCE(o.cancelled_orders, 0),
       COALESCE(o.total_spent, 0), o.avg_order_value, o.last_order_at,
       COALESCE(s.total_tickets, 0), COALESCE(s.open_tickets, 0), COALESCE(s.high_priority_tickets, 0),
       s.last_ticket_at,
       COALESCE(w.total_events, 0), COALESCE(w.total_sessions, 0), COALESCE(w.purchase_events, 0),
       COALESCE(w.cart_events, 0), w.last_active_at,
       COALESCE(o.total_orders, 0) * 10 + COALESCE(w.total_sessions, 0) * 5
       + COALESCE(w.purchase_events, 0) * 20 - COALESCE(s.high_priority_tickets, 0) * 15
FROM customers c
LEFT JOIN customer_order_summary o ON c.customer_id = o.customer_id
LEFT JOIN customer_support_summary s ON c.customer_id = s.customer_id
LEFT JOIN customer_web_activity w ON c.customer_id = w.customer_id
WHERE cid IS NULL OR c.customer_id = cid
$$;

CREATE TABLE customer_360 AS SELECT * FROM hw_360(NULL);
ALTER TABLE customer_360 ADD PRIMARY KEY (customer_id);

-- customer_churn_risk and churn_alerts, for one customer or all, from customer_360 (whose rows
-- bench_hw_verify_all() checks against the query).
CREATE FUNCTION hw_churn(cid int) RETURNS TABLE (
    customer_id int, full_name varchar, account_tier varchar, lifetime_value numeric,
    open_tickets bigint, high_priority_tickets bigint, engagement_score bigint, churn_risk text)
LANGUAGE sql STABLE AS $$
SELECT customer_id, full_name, account_tier, lifetime_value, open_tickets, high_priority_tickets,
       engagement_score,
       CASE WHEN open_tickets > 0 AND engagement_score < 0 THEN 'high_risk'
            WHEN open_tickets > 0 OR engagement_score < 20 THEN 'medium_risk'
            ELSE 'healthy' END
FROM customer_360 WHERE cid IS NULL OR customer_id = cid
$$;
CREATE FUNCTION hw_alerts(cid int) RETURNS TABLE (
    customer_id int, full_name varchar, email varchar, lifetime_value numeric, engagement_score bigint)
LANGUAGE sql STABLE AS $$
SELECT customer_id, full_name, email, lifetime_value, engagement_score
FROM customer_360 WHERE (cid IS NULL OR customer_id = cid) AND lifetime_value > 500 AND engagement_score < 10
$$;

CREATE TABLE customer_churn_risk AS SELECT * FROM hw_churn(NULL);
ALTER TABLE customer_churn_risk ADD PRIMARY KEY (customer_id);
CREATE TABLE churn_alerts AS SELECT * FROM hw_alerts(NULL);
ALTER TABLE churn_alerts ADD PRIMARY KEY (customer_id);

-- hw_refresh_customer(cid): the customer's rows of the three per-customer tables, recomputed.
-- First the customer's lock: two writers of one customer (one adding an order, the other a
-- ticket) would otherwise each read the other's summary as it was before, and the second
-- upsert would overwrite the first with a row missing the first's change (READ COMMITTED).
-- Holding it, the next statement's snapshot sees what the previous holder committed.
CREATE FUNCTION hw_refresh_customer(cid int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(cid);
    INSERT INTO customer_360 AS t SELECT * FROM hw_360(cid)
    ON CONFLICT (customer_id) DO UPDATE SET
        (full_name, email, account_tier, signup_date, total_orders, completed_orders,
         cancelled_orders, lifetime_value, avg_order_value, last_order_at, total_tickets,
         open_tickets, high_priority_tickets, last_ticket_at, total_web_events, total_sessions,
         purchase_events, cart_events, last_active_at, engagement_score) =
        (EXCLUDED.full_name, EXCLUDED.email, EXCLUDED.account_tier, EXCLUDED.signup_date,
         EXCLUDED.total_orders, EXCLUDED.completed_orders, EXCLUDED.cancelled_orders,
         EXCLUDED.lifetime_value, EXCLUDED.avg_order_value, EXCLUDED.last_order_at,
         EXCLUDED.total_tickets, EXCLUDED.open_tickets, EXCLUDED.high_priority_tickets,
         EXCLUDED.last_ticket_at, EXCLUDED.total_web_events, EXCLUDED.total_sessions,
         EXCLUDED.purchase_events, EXCLUDED.cart_events, EXCLUDED.last_active_at,
         EXCLUDED.engagement_score);
    INSERT INTO customer_churn_risk AS t SELECT * FROM hw_churn(cid)
    ON CONFLICT (customer_id) DO UPDATE SET
        (full_name, account_tier, lifetime_value, open_tickets, high_priority_tickets,
         engagement_score, churn_risk) =
        (EXCLUDED.full_name, EXCLUDED.account_tier, EXCLUDED.lifetime_value, EXCLUDED.open_tickets,
         EXCLUDED.high_priority_tickets, EXCLUDED.engagement_score, EXCLUDED.churn_risk);
    DELETE FROM churn_alerts WHERE customer_id = cid;
    INSERT INTO churn_alerts SELECT * FROM hw_alerts(cid);
END
$$;

CREATE FUNCTION hw_refresh_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM hw_refresh_customer(OLD.customer_id);
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.customer_id IS DISTINCT FROM OLD.customer_id) THEN
        PERFORM hw_refresh_customer(NEW.customer_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER hx_refresh_orders AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION hw_refresh_changed();
CREATE TRIGGER hx_refresh_tickets AFTER INSERT OR UPDATE OR DELETE ON support_tickets
    FOR EACH ROW EXECUTE FUNCTION hw_refresh_changed();

-- bench_hw_verify_all(): bench_hw_verify()'s two summaries, then the four other tables, each
-- with the rows differing from its query (customer_churn_risk and churn_alerts: from the rows
-- of customer_360, which is checked against its query).
CREATE FUNCTION bench_hw_verify_all() RETURNS TABLE (summary text, differing_rows bigint)
LANGUAGE sql AS $$
    SELECT * FROM bench_hw_verify()
    UNION ALL SELECT 'customer_web_activity', bench_hw_diff('customer_web_activity', 'SELECT * FROM hw_web_activity()')
    UNION ALL SELECT 'customer_360', bench_hw_diff('customer_360', 'SELECT * FROM hw_360(NULL)')
    UNION ALL SELECT 'customer_churn_risk', bench_hw_diff('customer_churn_risk', 'SELECT * FROM hw_churn(NULL)')
    UNION ALL SELECT 'churn_alerts', bench_hw_diff('churn_alerts', 'SELECT * FROM hw_alerts(NULL)')
$$;

-- bench/handwritten_triggers.sql: the reference a user would write by hand instead of ivm:
-- customer_order_summary and customer_support_summary (same columns and values as the seed
-- views in demo/views_ivm.sql) as plain tables, kept up to date by PL/pgSQL row triggers on
-- orders and support_tickets.  Used by bench/oltp, configuration (d).
--
-- Each changed row costs one UPSERT (the new row's group) and/or one UPDATE (the old row's
-- group); an UPDATE of a row is "remove the old row, add the new one".  A group whose last row
-- goes is deleted; MAX(created_at) is recomputed from orders / support_tickets (through the
-- customer_id index) only when the row removed held the maximum.  avg_order_value is a
-- generated column over a hidden sum.
--
-- Assumes what the benchmark's data guarantees: customer_id, order_total and created_at are
-- never NULL (a NULL customer_id would need its own group row: ON CONFLICT never matches NULL).
-- Truncate is not handled.  bench_hw_verify() compares both tables with their queries.

SET client_min_messages = warning;

CREATE TABLE customer_order_summary (
    customer_id      int PRIMARY KEY,
    total_orders     bigint NOT NULL,
    completed_orders bigint NOT NULL,
    cancelled_orders bigint NOT NULL,
    total_spent      numeric,
    order_total_sum  numeric,
    avg_order_value  numeric GENERATED ALWAYS AS (order_total_sum / NULLIF(total_orders, 0)) STORED,
    last_order_at    timestamp
);

CREATE TABLE customer_support_summary (
    customer_id           int PRIMARY KEY,
    total_tickets         bigint NOT NULL,
    open_tickets          bigint NOT NULL,
    high_priority_tickets bigint NOT NULL,
    last_ticket_at        timestamp
);

INSERT INTO customer_order_summary (customer_id, total_orders, completed_orders, cancelled_orders,
                                    total_spent, order_total_sum, last_order_at)
SELECT customer_id,
       COUNT(*),
       SUM(CASE WHEN order_status = 'completed' THEN 1 ELSE 0 END),
       SUM(CASE WHEN order_status = 'cancelled' THEN 1 ELSE 0 END),
       SUM(CASE WHEN order_status = 'completed' THEN order_total ELSE 0 END),
       SUM(order_total),
       MAX(created_at)
FROM orders
GROUP BY customer_id;

INSERT INTO customer_support_summary
SELECT customer_id,
       COUNT(*),
       SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END),
       SUM(CASE WHEN priority = 'high' THEN 1 ELSE 0 END),
       MAX(created_at)
FROM support_tickets
GROUP BY customer_id;

CREATE FUNCTION hw_orders_summary() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    left_orders bigint;
    last_at timestamp;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE customer_order_summary SET
            total_orders = total_orders - 1,
            completed_orders = completed_orders - CASE WHEN OLD.order_status = 'completed' THEN 1 ELSE 0 END,
            cancelled_orders = cancelled_orders - CASE WHEN OLD.order_status = 'cancelled' THEN 1 ELSE 0 END,
            total_spent = total_spent - CASE WHEN OLD.order_status = 'completed' THEN OLD.order_total ELSE 0 END,
            order_total_sum = order_total_sum - OLD.order_total
        WHERE customer_id = OLD.customer_id
        RETURNING total_orders, last_order_at INTO left_orders, last_at;
        IF left_orders = 0 THEN
            DELETE FROM customer_order_summary WHERE customer_id = OLD.customer_id;
        ELSIF OLD.created_at >= last_at THEN
            UPDATE customer_order_summary
            SET last_order_at = (SELECT max(created_at) FROM orders WHERE customer_id = OLD.customer_id)
            WHERE customer_id = OLD.customer_id;
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO customer_order_summary AS s (customer_id, total_orders, completed_orders,
                                                 cancelled_orders, total_spent, order_total_sum,
                                                 last_order_at)
        VALUES (NEW.customer_id, 1,
                CASE WHEN NEW.order_status = 'completed' THEN 1 ELSE 0 END,
                CASE WHEN NEW.order_status = 'cancelled' THEN 1 ELSE 0 END,
                CASE WHEN NEW.order_status = 'completed' THEN NEW.order_total ELSE 0 END,
                NEW.order_total, NEW.created_at)
        ON CONFLICT (customer_id) DO UPDATE SET
            total_orders = s.total_orders + 1,
            completed_orders = s.completed_orders + EXCLUDED.completed_orders,
            cancelled_orders = s.cancelled_orders + EXCLUDED.cancelled_orders,
            total_spent = s.total_spent + EXCLUDED.total_spent,
            order_total_sum = s.order_total_sum + EXCLUDED.order_total_sum,
            last_order_at = greatest(s.last_order_at, EXCLUDED.last_order_at);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION hw_support_summary() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    left_tickets bigint;
    last_at timestamp;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE customer_support_summary SET
            total_tickets = total_tickets - 1,
            open_tickets = open_tickets - CASE WHEN OLD.status = 'open' THEN 1 ELSE 0 END,
            high_priority_tickets = high_priority_tickets - CASE WHEN OLD.priority = 'high' THEN 1 ELSE 0 END
        WHERE customer_id = OLD.customer_id
        RETURNING total_tickets, last_ticket_at INTO left_tickets, last_at;
        IF left_tickets = 0 THEN
            DELETE FROM customer_support_summary WHERE customer_id = OLD.customer_id;
        ELSIF OLD.created_at >= last_at THEN
            UPDATE customer_support_summary
            SET last_ticket_at = (SELECT max(created_at) FROM support_tickets WHERE customer_id = OLD.customer_id)
            WHERE customer_id = OLD.customer_id;
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO customer_support_summary AS s
        VALUES (NEW.customer_id, 1,
                CASE WHEN NEW.status = 'open' THEN 1 ELSE 0 END,
                CASE WHEN NEW.priority = 'high' THEN 1 ELSE 0 END,
                NEW.created_at)
        ON CONFLICT (customer_id) DO UPDATE SET
            total_tickets = s.total_tickets + 1,
            open_tickets = s.open_tickets + EXCLUDED.open_tickets,
            high_priority_tickets = s.high_priority_tickets + EXCLUDED.high_priority_tickets,
            last_ticket_at = greatest(s.last_ticket_at, EXCLUDED.last_ticket_at);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER hw_orders_summary AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION hw_orders_summary();
CREATE TRIGGER hw_support_summary AFTER INSERT OR UPDATE OR DELETE ON support_tickets
    FOR EACH ROW EXECUTE FUNCTION hw_support_summary();

-- bench_hw_diff(tab, query): rows differing between table tab and the query (EXCEPT ALL both
-- ways), 0 when exact; the same check as ivm.verify.
CREATE FUNCTION bench_hw_diff(tab regclass, query text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE format('WITH t AS (TABLE %s), q AS (%s) SELECT count(*) FROM ((TABLE t EXCEPT ALL TABLE q)
                    UNION ALL (TABLE q EXCEPT ALL TABLE t)) d', tab, query) INTO n;
    RETURN n;
END
$$;

-- bench_hw_verify(): each table with the rows differing from its query.
CREATE FUNCTION bench_hw_verify() RETURNS TABLE (summary text, differing_rows bigint)
LANGUAGE sql AS $$
    SELECT 'customer_order_summary', bench_hw_diff('customer_order_summary', $q$
        SELECT customer_id,
               COUNT(*) AS total_orders,
               SUM(CASE WHEN order_status = 'completed' THEN 1 ELSE 0 END) AS completed_orders,
               SUM(CASE WHEN order_status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled_orders,
               SUM(CASE WHEN order_status = 'completed' THEN order_total ELSE 0 END) AS total_spent,
               SUM(order_total) AS order_total_sum,
               AVG(order_total) AS avg_order_value,
               MAX(created_at) AS last_order_at
        FROM orders GROUP BY customer_id$q$)
    UNION ALL
    SELECT 'customer_support_summary', bench_hw_diff('customer_support_summary', $q$
        SELECT customer_id,
               COUNT(*) AS total_tickets,
               SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END) AS open_tickets,
               SUM(CASE WHEN priority = 'high' THEN 1 ELSE 0 END) AS high_priority_tickets,
               MAX(created_at) AS last_ticket_at
        FROM support_tickets GROUP BY customer_id$q$)
$$;

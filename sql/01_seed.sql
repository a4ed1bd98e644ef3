-- 01_seed: the Customer 360 story from demo/ (schema, data and views inlined).
-- Four CDC-style base tables, three per-customer summaries, customer_360 joining them
-- (an ivm view over ivm views), a churn-risk classification and an alert "sink" on top.
-- Every ivm view x has a plain PostgreSQL view o_x with the same query (reading o_ views)
-- as the oracle; chk() compares them.
SET datestyle = 'ISO, MDY';
\set VERBOSITY terse

-- Customers table (CDC from CRM database)
CREATE TABLE customers (
    customer_id INT PRIMARY KEY,
    email VARCHAR,
    full_name VARCHAR,
    signup_date TIMESTAMP,
    account_tier VARCHAR
);

-- Orders table (CDC from e-commerce database)
CREATE TABLE orders (
    order_id INT PRIMARY KEY,
    customer_id INT,
    order_total NUMERIC,
    order_status VARCHAR,
    created_at TIMESTAMP
);

-- Support tickets (CDC from helpdesk system)
CREATE TABLE support_tickets (
    ticket_id INT PRIMARY KEY,
    customer_id INT,
    subject VARCHAR,
    priority VARCHAR,
    status VARCHAR,
    created_at TIMESTAMP,
    resolved_at TIMESTAMP
);

-- Web activity (CDC from clickstream database)
CREATE TABLE web_activity (
    event_id INT PRIMARY KEY,
    customer_id INT,
    page_url VARCHAR,
    event_type VARCHAR,
    session_id VARCHAR,
    created_at TIMESTAMP
);

INSERT INTO customers VALUES
(1, 'alice@example.com', 'Alice Johnson', '2025-01-15 10:00:00', 'premium'),
(2, 'bob@example.com', 'Bob Smith', '2025-03-20 14:30:00', 'standard'),
(3, 'carol@example.com', 'Carol Davis', '2025-06-01 09:15:00', 'premium');

INSERT INTO orders VALUES
(101, 1, 299.99, 'completed', '2026-03-15 11:00:00'),
(102, 1, 149.50, 'completed', '2026-03-20 14:00:00'),
(103, 1, 89.99, 'shipped', '2026-03-28 09:00:00'),
(104, 2, 599.00, 'completed', '2026-03-10 16:00:00'),
(105, 2, 45.00, 'cancelled', '2026-03-25 10:00:00'),
(106, 3, 1250.00, 'completed', '2026-03-01 08:00:00'),
(107, 3, 320.00, 'completed', '2026-03-18 12:00:00'),
(108, 3, 75.50, 'shipped', '2026-03-30 15:00:00');

INSERT INTO support_tickets VALUES
(1001, 1, 'Order delivery delay', 'medium', 'resolved',
 '2026-03-16 10:00:00', '2026-03-16 14:00:00'),
(1002, 2, 'Refund request', 'high', 'open',
 '2026-03-26 09:00:00', NULL),
(1003, 2, 'Product defect', 'high', 'resolved',
 '2026-03-12 11:00:00', '2026-03-13 10:00:00'),
(1004, 3, 'Account billing question', 'low', 'resolved',
 '2026-03-05 14:00:00', '2026-03-05 15:30:00');

INSERT INTO web_activity VALUES
(5001, 1, '/products/electronics', 'page_view', 'sess_a1', '2026-03-30 10:00:00'),
(5002, 1, '/products/electronics/laptop', 'page_view', 'sess_a1', '2026-03-30 10:02:00'),
(5003, 1, '/cart', 'add_to_cart', 'sess_a1', '2026-03-30 10:05:00'),
(5004, 2, '/products/clothing', 'page_view', 'sess_b1', '2026-03-30 11:00:00'),
(5005, 2, '/support', 'page_view', 'sess_b1', '2026-03-30 11:10:00'),
(5006, 3, '/products/home', 'page_view', 'sess_c1', '2026-03-30 09:00:00'),
(5007, 3, '/products/home/furniture', 'page_view', 'sess_c1', '2026-03-30 09:03:00'),
(5008, 3, '/checkout', 'purchase', 'sess_c1', '2026-03-30 09:10:00'),
(5009, 1, '/account/settings', 'page_view', 'sess_a2', '2026-03-31 08:00:00'),
(5010, 3, '/products/electronics', 'page_view', 'sess_c2', '2026-03-31 14:00:00');

-- create_view returns the view table (regclass).
SELECT ivm.create_view('customer_order_summary', $$
SELECT
    customer_id,
    COUNT(*) AS total_orders,
    SUM(CASE WHEN order_status = 'completed' THEN 1 ELSE 0 END) AS completed_orders,
    SUM(CASE WHEN order_status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled_orders,
    SUM(CASE WHEN order_status = 'completed' THEN order_total ELSE 0 END) AS total_spent,
    AVG(order_total) AS avg_order_value,
    MAX(created_at) AS last_order_at
FROM orders
GROUP BY customer_id
$$);

SELECT ivm.create_view('customer_support_summary', $$
SELECT
    customer_id,
    COUNT(*) AS total_tickets,
    SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END) AS open_tickets,
    SUM(CASE WHEN priority = 'high' THEN 1 ELSE 0 END) AS high_priority_tickets,
    MAX(created_at) AS last_ticket_at
FROM support_tickets
GROUP BY customer_id
$$);

SELECT ivm.create_view('customer_web_activity', $$
SELECT
    customer_id,
    COUNT(*) AS total_events,
    COUNT(DISTINCT session_id) AS total_sessions,
    SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchase_events,
    SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS cart_events,
    MAX(created_at) AS last_active_at
FROM web_activity
GROUP BY customer_id
$$);

SELECT ivm.create_view('customer_360', $$
SELECT
    c.customer_id,
    c.full_name,
    c.email,
    c.account_tier,
    c.signup_date,
    -- Order metrics
    COALESCE(o.total_orders, 0) AS total_orders,
    COALESCE(o.completed_orders, 0) AS completed_orders,
    COALESCE(o.cancelled_orders, 0) AS cancelled_orders,
    COALESCE(o.total_spent, 0) AS lifetime_value,
    o.avg_order_value,
    o.last_order_at,
    -- Support metrics
    COALESCE(s.total_tickets, 0) AS total_tickets,
    COALESCE(s.open_tickets, 0) AS open_tickets,
    COALESCE(s.high_priority_tickets, 0) AS high_priority_tickets,
    s.last_ticket_at,
    -- Web activity metrics
    COALESCE(w.total_events, 0) AS total_web_events,
    COALESCE(w.total_sessions, 0) AS total_sessions,
    COALESCE(w.purchase_events, 0) AS purchase_events,
    COALESCE(w.cart_events, 0) AS cart_events,
    w.last_active_at,
    -- Computed engagement score
    COALESCE(o.total_orders, 0) * 10
    + COALESCE(w.total_sessions, 0) * 5
    + COALESCE(w.purchase_events, 0) * 20
    - COALESCE(s.high_priority_tickets, 0) * 15
    AS engagement_score
FROM customers c
LEFT JOIN customer_order_summary o ON c.customer_id = o.customer_id
LEFT JOIN customer_support_summary s ON c.customer_id = s.customer_id
LEFT JOIN customer_web_activity w ON c.customer_id = w.customer_id
$$);

SELECT ivm.create_view('customer_churn_risk', $$
SELECT
    customer_id,
    full_name,
    account_tier,
    lifetime_value,
    open_tickets,
    high_priority_tickets,
    engagement_score,
    CASE
        WHEN open_tickets > 0 AND engagement_score < 0 THEN 'high_risk'
        WHEN open_tickets > 0 OR engagement_score < 20 THEN 'medium_risk'
        ELSE 'healthy'
    END AS churn_risk
FROM customer_360
$$);

SELECT ivm.create_view('churn_alerts', $$
SELECT customer_id, full_name, email, lifetime_value, engagement_score
FROM customer_360
WHERE lifetime_value > 500 AND engagement_score < 10
$$);

-- The oracles: the same queries as plain views, over the oracle summaries.
CREATE VIEW o_customer_order_summary AS
SELECT
    customer_id,
    COUNT(*) AS total_orders,
    SUM(CASE WHEN order_status = 'completed' THEN 1 ELSE 0 END) AS completed_orders,
    SUM(CASE WHEN order_status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled_orders,
    SUM(CASE WHEN order_status = 'completed' THEN order_total ELSE 0 END) AS total_spent,
    AVG(order_total) AS avg_order_value,
    MAX(created_at) AS last_order_at
FROM orders
GROUP BY customer_id;

CREATE VIEW o_customer_support_summary AS
SELECT
    customer_id,
    COUNT(*) AS total_tickets,
    SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END) AS open_tickets,
    SUM(CASE WHEN priority = 'high' THEN 1 ELSE 0 END) AS high_priority_tickets,
    MAX(created_at) AS last_ticket_at
FROM support_tickets
GROUP BY customer_id;

CREATE VIEW o_customer_web_activity AS
SELECT
    customer_id,
    COUNT(*) AS total_events,
    COUNT(DISTINCT session_id) AS total_sessions,
    SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchase_events,
    SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS cart_events,
    MAX(created_at) AS last_active_at
FROM web_activity
GROUP BY customer_id;

CREATE VIEW o_customer_360 AS
SELECT
    c.customer_id,
    c.full_name,
    c.email,
    c.account_tier,
    c.signup_date,
    -- Order metrics
    COALESCE(o.total_orders, 0) AS total_orders,
    COALESCE(o.completed_orders, 0) AS completed_orders,
    COALESCE(o.cancelled_orders, 0) AS cancelled_orders,
    COALESCE(o.total_spent, 0) AS lifetime_value,
    o.avg_order_value,
    o.last_order_at,
    -- Support metrics
    COALESCE(s.total_tickets, 0) AS total_tickets,
    COALESCE(s.open_tickets, 0) AS open_tickets,
    COALESCE(s.high_priority_tickets, 0) AS high_priority_tickets,
    s.last_ticket_at,
    -- Web activity metrics
    COALESCE(w.total_events, 0) AS total_web_events,
    COALESCE(w.total_sessions, 0) AS total_sessions,
    COALESCE(w.purchase_events, 0) AS purchase_events,
    COALESCE(w.cart_events, 0) AS cart_events,
    w.last_active_at,
    -- Computed engagement score
    COALESCE(o.total_orders, 0) * 10
    + COALESCE(w.total_sessions, 0) * 5
    + COALESCE(w.purchase_events, 0) * 20
    - COALESCE(s.high_priority_tickets, 0) * 15
    AS engagement_score
FROM customers c
LEFT JOIN o_customer_order_summary o ON c.customer_id = o.customer_id
LEFT JOIN o_customer_support_summary s ON c.customer_id = s.customer_id
LEFT JOIN o_customer_web_activity w ON c.customer_id = w.customer_id;

CREATE VIEW o_customer_churn_risk AS
SELECT
    customer_id,
    full_name,
    account_tier,
    lifetime_value,
    open_tickets,
    high_priority_tickets,
    engagement_score,
    CASE
        WHEN open_tickets > 0 AND engagement_score < 0 THEN 'high_risk'
        WHEN open_tickets > 0 OR engagement_score < 20 THEN 'medium_risk'
        ELSE 'healthy'
    END AS churn_risk
FROM o_customer_360;

CREATE VIEW o_churn_alerts AS
SELECT customer_id, full_name, email, lifetime_value, engagement_score
FROM o_customer_360
WHERE lifetime_value > 500 AND engagement_score < 10;

SELECT name, level, internal FROM ivm.views ORDER BY level, name;

SELECT * FROM chk('customer_order_summary', 'customer_support_summary', 'customer_web_activity', 'customer_360', 'customer_churn_risk', 'churn_alerts');

TABLE customer_order_summary ORDER BY customer_id;
TABLE customer_support_summary ORDER BY customer_id;
TABLE customer_web_activity ORDER BY customer_id;
TABLE customer_360 ORDER BY customer_id;
TABLE customer_churn_risk ORDER BY customer_id;
TABLE churn_alerts ORDER BY customer_id;

-- The tutorial's live update: one new completed order for Bob (customer 2) raises his
-- lifetime value to 849.00 and his engagement score from -5 to 5, so he moves from
-- high_risk to medium_risk; he stays in churn_alerts (value > 500, score < 10).
INSERT INTO orders VALUES (109, 2, 250.00, 'completed', '2026-04-01 10:00:00');

SELECT * FROM chk('customer_order_summary', 'customer_support_summary', 'customer_web_activity', 'customer_360', 'customer_churn_risk', 'churn_alerts');

TABLE customer_order_summary ORDER BY customer_id;
TABLE customer_360 ORDER BY customer_id;
TABLE customer_churn_risk ORDER BY customer_id;
TABLE churn_alerts ORDER BY customer_id;

-- More of the story.  A new customer with no activity yet: customer_360 shows zeros and NULLs
-- for Dan (his summaries have no row), and his low score makes him medium_risk.
INSERT INTO customers VALUES (4, 'dan@example.com', 'Dan Brown', '2026-04-01 12:00:00', 'standard');
-- Bob's open ticket is resolved; Carol's purchase event is deleted (her score drops by 20).
UPDATE support_tickets SET status = 'resolved', resolved_at = '2026-04-02 09:00:00' WHERE ticket_id = 1002;
DELETE FROM web_activity WHERE event_id = 5008;

SELECT * FROM chk('customer_order_summary', 'customer_support_summary', 'customer_web_activity', 'customer_360', 'customer_churn_risk', 'churn_alerts');

SELECT customer_id, full_name, total_orders, lifetime_value, avg_order_value, open_tickets,
       total_sessions, purchase_events, engagement_score
FROM customer_360 ORDER BY customer_id;
TABLE customer_churn_risk ORDER BY customer_id;
TABLE churn_alerts ORDER BY customer_id;

-- Bob's orders all go away (his order summary row disappears; customer_360 keeps him).
DELETE FROM orders WHERE customer_id = 2;
SELECT * FROM chk('customer_order_summary', 'customer_support_summary', 'customer_web_activity', 'customer_360', 'customer_churn_risk', 'churn_alerts');
TABLE customer_order_summary ORDER BY customer_id;
SELECT customer_id, full_name, total_orders, lifetime_value, avg_order_value, last_order_at, engagement_score
FROM customer_360 ORDER BY customer_id;
TABLE churn_alerts ORDER BY customer_id;

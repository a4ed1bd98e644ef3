-- test/smith/schema.sql: the tables SQLsmith generates queries against (test/smith/smith.py).
-- The four Customer 360 seed tables with their sample rows (shared/seed/schema_and_data.sql),
-- plus one table without a primary key whose columns have the types the seed lacks (floats,
-- booleans, dates, intervals, bigint, jsonb), with NULLs and duplicate rows.
-- smith.py adds the seed views on top: ivm views in the database the queries are fed to,
-- plain views in the one SQLsmith reads the schema from.
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


-- Not from the seed: the other column types.
CREATE TABLE measurements (
    k    int,
    x    float8,
    r    real,
    b    boolean,
    d    date,
    iv   interval,
    big  bigint,
    tag  text,
    doc  jsonb
);

INSERT INTO measurements VALUES
(1, 1.5, 0.25, true, '2026-03-01', '1 day', 10000000000, 'a', '{"a": 1}'),
(1, 1.5, 0.25, true, '2026-03-01', '1 day', 10000000000, 'a', '{"a": 1}'),
(2, -3.25, NULL, false, '2026-03-02', '2 hours', -5, 'b', '[1, 2]'),
(2, 0, 1.75, NULL, NULL, '-30 minutes', 0, NULL, NULL),
(3, NULL, -2, true, '2026-03-05', NULL, 7, 'c', '"x"'),
(NULL, 100.125, 3.5, false, '2026-02-28', '1 mon 2 days', NULL, 'a', '{}'),
(4, 1e10, 0, true, '2026-03-10', '0', 3, '', 'null');

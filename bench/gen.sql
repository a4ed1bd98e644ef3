-- bench/gen.sql: the Customer-360 seed schema (demo/schema_and_data.sql) filled with :N customers,
-- deterministically (setseed before every table), with the seed's ratios per customer:
-- ~2.7 orders, ~1.3 support tickets, ~3.3 web events.
--
--   psql -X -v ON_ERROR_STOP=1 -v N=1000000 -f bench/gen.sql
--
-- Rows are spread over customers uniformly at random, so like a real shop some customers have
-- no orders / tickets / events at all (the LEFT JOINs of customer_360 see NULLs).
-- Tables are loaded without indexes; primary keys and the customer_id indexes are added after.
-- Also creates bench_order_id, the sequence the pgbench INSERT script draws fresh order ids from.

\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET maintenance_work_mem = '512MB';
SET synchronous_commit = off;

SELECT round(2.7 * :N)::bigint AS n_orders,
       round(1.3 * :N)::bigint AS n_tickets,
       round(3.3 * :N)::bigint AS n_events \gset

CREATE TABLE customers (
    customer_id INT,
    email VARCHAR,
    full_name VARCHAR,
    signup_date TIMESTAMP,
    account_tier VARCHAR
);

CREATE TABLE orders (
    order_id INT,
    customer_id INT,
    order_total NUMERIC,
    order_status VARCHAR,
    created_at TIMESTAMP
);

CREATE TABLE support_tickets (
    ticket_id INT,
    customer_id INT,
    subject VARCHAR,
    priority VARCHAR,
    status VARCHAR,
    created_at TIMESTAMP,
    resolved_at TIMESTAMP
);

CREATE TABLE web_activity (
    event_id INT,
    customer_id INT,
    page_url VARCHAR,
    event_type VARCHAR,
    session_id VARCHAR,
    created_at TIMESTAMP
);

-- customers: names from two small vocabularies, tiers 60% standard / 30% premium / 10% enterprise.
SELECT setseed(0.11);
INSERT INTO customers
SELECT g,
       'customer' || g || '@example.com',
       (ARRAY['Alice','Bob','Carol','Dave','Erin','Frank','Grace','Heidi','Ivan','Judy',
              'Mallory','Niaj','Olivia','Peggy','Rupert','Sybil','Trent','Victor','Walter','Zoe'])
           [1 + (g % 20)]
         || ' ' ||
       (ARRAY['Johnson','Smith','Davis','Brown','Miller','Wilson','Moore','Taylor','Anderson',
              'Thomas','Jackson','White','Harris','Martin','Garcia','Clark','Lewis','Lee'])
           [1 + ((g / 20) % 18)],
       timestamp '2024-01-01' + random() * interval '730 days',
       CASE WHEN r < 0.6 THEN 'standard' WHEN r < 0.9 THEN 'premium' ELSE 'enterprise' END
FROM (SELECT g, random() AS r FROM generate_series(1, :N) AS g) s;

-- orders: totals 5..1500, status 70% completed / 15% shipped / 8% pending / 7% cancelled.
SELECT setseed(0.22);
INSERT INTO orders
SELECT g,
       1 + floor(random() * :N)::int,
       round((5 + random() * random() * 1495)::numeric, 2),
       CASE WHEN r < 0.70 THEN 'completed' WHEN r < 0.85 THEN 'shipped'
            WHEN r < 0.93 THEN 'pending' ELSE 'cancelled' END,
       timestamp '2025-04-01' + random() * interval '365 days'
FROM (SELECT g, random() AS r FROM generate_series(1, :n_orders) AS g) s;

-- support tickets: priority 50% low / 35% medium / 15% high; 25% open, the rest resolved
-- (resolved_at a few hours later).
SELECT setseed(0.33);
INSERT INTO support_tickets
SELECT g,
       1 + floor(random() * :N)::int,
       (ARRAY['Order delivery delay','Refund request','Product defect','Account billing question',
              'Password reset','Shipping address change','Warranty claim','Missing item'])
           [1 + floor(random() * 8)::int],
       CASE WHEN p < 0.50 THEN 'low' WHEN p < 0.85 THEN 'medium' ELSE 'high' END,
       CASE WHEN s < 0.25 THEN 'open' ELSE 'resolved' END,
       t,
       CASE WHEN s < 0.25 THEN NULL ELSE t + random() * interval '48 hours' END
FROM (SELECT g, random() AS p, random() AS s,
             timestamp '2025-04-01' + random() * interval '365 days' AS t
      FROM generate_series(1, :n_tickets) AS g) x;

-- web events: 75% page_view / 10% search / 10% add_to_cart / 5% purchase; each customer's
-- events fall into at most 3 sessions (sess_<customer>_<k>).
SELECT setseed(0.44);
INSERT INTO web_activity
SELECT g,
       c,
       (ARRAY['/','/products/electronics','/products/electronics/laptop','/products/clothing',
              '/products/home','/products/home/furniture','/cart','/checkout','/support',
              '/account/settings','/search'])[1 + floor(random() * 11)::int],
       CASE WHEN e < 0.75 THEN 'page_view' WHEN e < 0.85 THEN 'search'
            WHEN e < 0.95 THEN 'add_to_cart' ELSE 'purchase' END,
       'sess_' || c || '_' || (1 + floor(random() * 3)::int),
       timestamp '2025-04-01' + random() * interval '365 days'
FROM (SELECT g, 1 + floor(random() * :N)::int AS c, random() AS e
      FROM generate_series(1, :n_events) AS g) x;

-- The indexes a user would have: the seed's primary keys, and the foreign-key-ish customer_id.
ALTER TABLE customers ADD PRIMARY KEY (customer_id);
ALTER TABLE orders ADD PRIMARY KEY (order_id);
ALTER TABLE support_tickets ADD PRIMARY KEY (ticket_id);
ALTER TABLE web_activity ADD PRIMARY KEY (event_id);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE INDEX support_tickets_customer_id_idx ON support_tickets (customer_id);
CREATE INDEX web_activity_customer_id_idx ON web_activity (customer_id);

-- Fresh order ids for the pgbench INSERT script: above every generated one.
SELECT format('CREATE SEQUENCE bench_order_id START %s', :n_orders + 1) \gexec

VACUUM (ANALYZE) customers, orders, support_tickets, web_activity;

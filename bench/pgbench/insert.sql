-- One new order for a random customer (fresh id from bench_order_id).  pgbench -D N=<customers>
\set cid random(1, :N)
\set cents random(500, 150000)
\set st random(1, 4)
INSERT INTO orders VALUES (nextval('bench_order_id'), :cid, :cents / 100.0, (ARRAY['completed','shipped','pending','cancelled'])[:st], now());

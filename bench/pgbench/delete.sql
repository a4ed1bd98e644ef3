-- Delete one existing order, then put an order with the same id back for the same customer, so
-- the data set stays the same size.  Only the DELETE statement's latency is reported (pgbench -r).
-- pgbench -D M=<generated orders>
\set oid random(1, :M)
\set cents random(500, 150000)
DELETE FROM orders WHERE order_id = :oid RETURNING customer_id AS d_cid \gset
INSERT INTO orders VALUES (:oid, :d_cid, :cents / 100.0, 'completed', now());

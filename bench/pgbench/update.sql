-- Change one existing order's status.  pgbench -D M=<generated orders>
\set oid random(1, :M)
\set st random(1, 4)
UPDATE orders SET order_status = (ARRAY['completed','shipped','pending','cancelled'])[:st] WHERE order_id = :oid;

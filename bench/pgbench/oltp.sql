-- Mixed OLTP transaction for bench/oltp: four single-row writes in one transaction.
--   1. a new order for a random customer (fresh id from bench_order_id);
--   2. a random existing order gets a random status;
--   3. a new support ticket ('open') for a random customer (fresh id from bench_ticket_id);
--   4. a random existing ticket is resolved.
-- pgbench -D N=<customers> -D M=<generated orders> -D T=<generated tickets>
\set cid random(1, :N)
\set cents random(500, 150000)
\set ost random(1, 4)
\set oid random(1, :M)
\set nst random(1, 4)
\set tcid random(1, :N)
\set subj random(1, 8)
\set pri random(1, 3)
\set tid random(1, :T)
BEGIN;
INSERT INTO orders VALUES (nextval('bench_order_id'), :cid, :cents / 100.0, (ARRAY['completed','shipped','pending','cancelled'])[:ost], now());
UPDATE orders SET order_status = (ARRAY['completed','shipped','pending','cancelled'])[:nst] WHERE order_id = :oid;
INSERT INTO support_tickets VALUES (nextval('bench_ticket_id'), :tcid, (ARRAY['Order delivery delay','Refund request','Product defect','Account billing question','Password reset','Shipping address change','Warranty claim','Missing item'])[:subj], (ARRAY['low','medium','high'])[:pri], 'open', now(), NULL);
UPDATE support_tickets SET status = 'resolved', resolved_at = now() WHERE ticket_id = :tid;
END;

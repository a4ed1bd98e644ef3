-- demo/demo.sql: the Customer 360 demo on ivm. Run by demo/run as
--   psql -X -q -v ON_ERROR_STOP=1 -f demo/demo.sql
-- in a fresh database; its output must equal demo/expected_results.txt byte for byte
-- (hence the \echo lines and the blank lines between tables).

-- Timestamps print in ISO form whatever the server's default.
SET datestyle = 'ISO, MDY';

CREATE EXTENSION ivm;
\ir schema_and_data.sql
-- create_view returns the view's regclass: keep that out of the compared output.
\o /dev/null
\ir views_ivm.sql
\o

\echo '-- What PostgreSQL itself computes for the seed views (plain, non-incremental views): the oracle.'
\echo '-- Note: AVG over numeric prints with full scale here (179.8266666666666667); the tutorial rounded it.'
\echo
\echo '-- TABLE customer_order_summary ORDER BY customer_id'
TABLE customer_order_summary ORDER BY customer_id;
\echo
\echo '-- TABLE customer_support_summary ORDER BY customer_id'
TABLE customer_support_summary ORDER BY customer_id;
\echo
\echo '-- TABLE customer_web_activity ORDER BY customer_id'
TABLE customer_web_activity ORDER BY customer_id;
\echo
\echo '-- TABLE customer_360 ORDER BY customer_id'
TABLE customer_360 ORDER BY customer_id;
\echo
\echo '-- TABLE customer_churn_risk ORDER BY customer_id'
TABLE customer_churn_risk ORDER BY customer_id;
\echo
\echo '-- TABLE churn_alerts ORDER BY customer_id'
TABLE churn_alerts ORDER BY customer_id;

-- The tutorial's live update: one new completed order for Bob moves him out of high risk.
\echo '-- after: INSERT INTO orders VALUES (109, 2, 250.00, ''completed'', ''2026-04-01 10:00:00'');'
INSERT INTO orders VALUES (109, 2, 250.00, 'completed', '2026-04-01 10:00:00');
\echo '-- TABLE customer_360 ORDER BY customer_id'
TABLE customer_360 ORDER BY customer_id;
\echo '-- TABLE customer_churn_risk ORDER BY customer_id'
TABLE customer_churn_risk ORDER BY customer_id;
\echo '-- TABLE churn_alerts ORDER BY customer_id'
TABLE churn_alerts ORDER BY customer_id;

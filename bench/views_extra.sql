-- bench/views_extra.sql: the benchmark's seventh view, created after the six of
-- demo/views_ivm.sql (the five seed views and churn_alerts), in the same format (the bench
-- scripts take every `SELECT ivm.create_view('name', $$ ... $$);` of both files, in order).
--
-- tier_summary is the hot-row case: a low-cardinality aggregate over customer_360, one row per
-- account tier (3 rows), so every write that changes any customer's lifetime value or
-- engagement score updates one of three rows, and concurrent writers of different customers
-- meet on the same row.  MIN/MAX of the engagement score are recomputed from customer_360 for
-- the tier when the customer holding the extreme value changes.

SELECT ivm.create_view('tier_summary', $$
SELECT
    account_tier,
    COUNT(*) AS customers,
    SUM(lifetime_value) AS total_lifetime_value,
    MIN(engagement_score) AS min_engagement,
    MAX(engagement_score) AS max_engagement
FROM customer_360
GROUP BY account_tier
$$);

-- The Customer 360 views as ivm incrementally maintained views: three per-customer
-- summaries, customer_360 reading them (views over views), the churn-risk table over
-- customer_360, and churn_alerts, the view an alerting consumer would follow.

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

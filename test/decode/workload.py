#!/usr/bin/env python3
"""Random, seeded DML on the Customer 360 tables, printed as a psql script (test/decode.sh).

    python3 test/decode/workload.py [--transactions N] [--seed S] | psql -v ON_ERROR_STOP=1 ...

Inserts, updates (of values, of groups, of join keys), deletes and the odd TRUNCATE of
customers, orders, support_tickets and web_activity, plus writes to `notes`, a table no view
reads.  Transactions come in several shapes: single statements, multi-statement
transactions, transactions rolled back, savepoints rolled back inside committed
transactions, and PL/pgSQL blocks whose caught error undoes their work.

Everything that is undone carries a customer named 'marker-rolled-back-<n>' (with an order
and a ticket that put it in every view, churn_alerts included): no stream may ever mention
it.  Some committed transactions carry 'marker-committed-<n>' the same way, so that a
search for markers is known to find what is there.
"""

import argparse
import random

TIERS = ["standard", "premium", "enterprise", None]
STATUSES = ["completed", "cancelled", "shipped", "pending", None]
PRIORITIES = ["low", "medium", "high"]
TICKET_STATUSES = ["open", "resolved", "pending"]
EVENTS = ["page_view", "add_to_cart", "purchase"]
NAMES = ["Ann Lee", "O'Brien", "back\\slash", "Zoë ✓", "line\nbreak", 'say "hi"', "tab\there"]


def lit(v):
    """An SQL literal (standard_conforming_strings: only quotes are doubled)."""
    if v is None:
        return "NULL"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


class Workload:
    def __init__(self, seed):
        self.r = random.Random(seed)
        # The highest key of each table so far: new rows continue the seed's keys, so that
        # a random key in [first, highest] mostly names a row.
        self.customer = 3
        self.order = 108
        self.ticket = 1004
        self.event = 5010
        self.markers = 0

    def when(self):
        return "2026-%02d-%02d %02d:%02d:00" % (self.r.choice([3, 4]), self.r.randint(1, 28),
                                                self.r.randint(0, 23), self.r.randint(0, 59))

    def some_customer(self):
        # Now and then one that does not exist: orders without a customer row.
        return self.r.randint(1, self.customer + 2)

    # -- statements -------------------------------------------------------------------------
    def new_customer(self, name=None):
        self.customer += 1
        c = self.customer
        name = name or self.r.choice(NAMES) + " %d" % c
        return c, "INSERT INTO customers VALUES (%d, %s, %s, %s, %s);" % (
            c, lit("c%d@example.com" % c), lit(name), lit(self.when()), lit(self.r.choice(TIERS)))

    def orders(self, customer=None, n=None, total=None, status=None):
        rows = []
        for _ in range(n or self.r.randint(1, 3)):
            self.order += 1
            rows.append("(%d, %d, %s, %s, %s)" % (
                self.order, customer or self.some_customer(),
                total if total is not None else "%.2f" % self.r.uniform(1, 900),
                lit(status or self.r.choice(STATUSES)), lit(self.when())))
        return "INSERT INTO orders VALUES %s;" % ", ".join(rows)

    def tickets(self, customer=None, priority=None):
        rows = []
        for _ in range(self.r.randint(1, 2)):
            self.ticket += 1
            rows.append("(%d, %d, %s, %s, %s, %s, NULL)" % (
                self.ticket, customer or self.some_customer(), lit("subject %d" % self.ticket),
                lit(priority or self.r.choice(PRIORITIES)), lit(self.r.choice(TICKET_STATUSES)),
                lit(self.when())))
        return "INSERT INTO support_tickets VALUES %s;" % ", ".join(rows)

    def events(self):
        rows = []
        for _ in range(self.r.randint(1, 4)):
            self.event += 1
            rows.append("(%d, %d, %s, %s, %s, %s)" % (
                self.event, self.some_customer(), lit("/page/%d" % self.r.randint(1, 9)),
                lit(self.r.choice(EVENTS)), lit("sess_%d" % self.r.randint(1, 8)), lit(self.when())))
        return "INSERT INTO web_activity VALUES %s;" % ", ".join(rows)

    def span(self, low, high):
        a = self.r.randint(low, max(low, high))
        return a, a + self.r.randint(0, 3)

    def statement(self):
        r = self.r
        k = r.random()
        if k < 0.08:
            return self.new_customer()[1]
        if k < 0.14:
            return "UPDATE customers SET account_tier = %s, full_name = %s WHERE customer_id = %d;" % (
                lit(r.choice(TIERS)), lit(r.choice(NAMES)), self.some_customer())
        if k < 0.17:
            return "DELETE FROM customers WHERE customer_id = %d;" % self.some_customer()
        if k < 0.35:
            return self.orders()
        if k < 0.45:
            a, b = self.span(101, self.order)
            return ("UPDATE orders SET order_total = order_total + %d, order_status = %s "
                    "WHERE order_id BETWEEN %d AND %d;" % (r.randint(-50, 300), lit(r.choice(STATUSES)), a, b))
        if k < 0.50:
            return "UPDATE orders SET customer_id = %d WHERE order_id = %d;" % (
                self.some_customer(), r.randint(101, self.order))
        if k < 0.57:
            a, b = self.span(101, self.order)
            return "DELETE FROM orders WHERE order_id BETWEEN %d AND %d;" % (a, b)
        if k < 0.65:
            return self.tickets()
        if k < 0.70:
            return "UPDATE support_tickets SET status = %s, priority = %s WHERE ticket_id = %d;" % (
                lit(r.choice(TICKET_STATUSES)), lit(r.choice(PRIORITIES)), r.randint(1001, self.ticket))
        if k < 0.74:
            a, b = self.span(1001, self.ticket)
            return "DELETE FROM support_tickets WHERE ticket_id BETWEEN %d AND %d;" % (a, b)
        if k < 0.86:
            return self.events()
        if k < 0.91:
            a, b = self.span(5001, self.event)
            return "DELETE FROM web_activity WHERE event_id BETWEEN %d AND %d;" % (a, b)
        if k < 0.915:
            return "TRUNCATE %s;" % r.choice(["web_activity", "support_tickets"])
        return "INSERT INTO notes (body) VALUES (%s);" % lit("note %d" % r.randint(1, 10**6))

    def statements(self, low, high):
        return [self.statement() for _ in range(self.r.randint(low, high))]

    def marked(self, kind):
        """Statements giving a customer named after `kind` a row in every view."""
        self.markers += 1
        c, sql = self.new_customer("marker-%s-%d" % (kind, self.markers))
        return [sql, self.orders(c, n=1, total="700.00", status="completed"), self.tickets(c, priority="high")]

    # -- transactions -----------------------------------------------------------------------
    def transaction(self):
        k = self.r.random()
        if k < 0.40:
            return [self.statement()]
        if k < 0.65:
            return ["BEGIN;"] + self.statements(2, 5) + ["COMMIT;"]
        if k < 0.75:
            return (["BEGIN;"] + self.statements(1, 3) + ["SAVEPOINT sp;"] + self.statements(0, 2) +
                    self.marked("rolled-back") + ["ROLLBACK TO SAVEPOINT sp;"] + self.statements(1, 2) +
                    ["COMMIT;"])
        if k < 0.85:
            return ["BEGIN;"] + self.statements(0, 3) + self.marked("rolled-back") + ["ROLLBACK;"]
        if k < 0.90:
            # An error caught in PL/pgSQL undoes the block (a subtransaction).
            stmts = self.marked("rolled-back")
            dup = stmts[0]
            return ["DO $do$ BEGIN"] + stmts + [dup, "EXCEPTION WHEN unique_violation THEN NULL; END $do$;"]
        if k < 0.97:
            return ["BEGIN;"] + self.statements(0, 2) + self.marked("committed") + ["COMMIT;"]
        return ["BEGIN;", "TRUNCATE web_activity;"] + self.statements(1, 3) + [
            "ROLLBACK;" if self.r.random() < 0.7 else "COMMIT;"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transactions", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    w = Workload(args.seed)
    for _ in range(args.transactions):
        print("\n".join(w.transaction()))


if __name__ == "__main__":
    main()

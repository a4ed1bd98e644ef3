#!/usr/bin/env python3
"""Checks the shape of a stream written by `pg_recvlogical -P ivm` (test/decode.sh).

    python3 test/decode/check_stream.py FILE --relations view:public.a,table:public.b,...

- every line is one JSON object;
- records come in transactions: begin, at least one change, commit with the same xid and
  commit_lsn; commit LSNs strictly increase from one transaction to the next;
- a change names one of --relations (as "view" or "table") with op insert, update, delete
  or truncate; inserts carry "new", deletes "old", updates "new" (and "old" for views:
  their whole old row);
- every relation of --relations has changes in the stream;
- nothing mentions 'marker-rolled-back' (written only by undone work), and something
  mentions 'marker-committed' (so the search is known to find what is there).

Prints the number of transactions and of changes per relation and operation; exits 1 on
the first violation (with its line number).
"""

import argparse
import collections
import json
import sys


def lsn(text):
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--relations", required=True, help="kind:name,... (kind: view or table)")
    args = ap.parse_args()
    allowed = set(tuple(x.split(":", 1)) for x in args.relations.split(","))

    counts = collections.Counter()
    txns = 0
    open_txn = None  # the begin record of the transaction under way
    changes_in_txn = 0
    last_commit = -1
    committed_markers = 0
    n = 0

    def fail(n, msg):
        print("%s:%d: %s" % (args.file, n, msg), file=sys.stderr)
        sys.exit(1)

    with open(args.file, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if "marker-rolled-back" in line:
                fail(n, "undone work was streamed: " + line.strip())
            committed_markers += "marker-committed" in line
            try:
                rec = json.loads(line)
            except ValueError as e:
                fail(n, "not JSON (%s): %r" % (e, line))
            op = rec.get("op")
            if op == "begin":
                if open_txn is not None:
                    fail(n, "begin inside a transaction")
                if set(rec) != {"op", "xid", "commit_lsn", "commit_time"}:
                    fail(n, "unexpected begin record: " + line.strip())
                open_txn, changes_in_txn = rec, 0
            elif op == "commit":
                if open_txn is None:
                    fail(n, "commit outside a transaction")
                if (rec.get("xid"), rec.get("commit_lsn")) != (open_txn["xid"], open_txn["commit_lsn"]):
                    fail(n, "commit does not match its begin")
                if changes_in_txn == 0:
                    fail(n, "empty transaction streamed")
                this = lsn(rec["commit_lsn"])
                if this <= last_commit:
                    fail(n, "commit LSN does not increase")
                last_commit = this
                txns += 1
                open_txn = None
            else:
                if open_txn is None:
                    fail(n, "change outside a transaction")
                kind = "view" if "view" in rec else "table"
                if (kind, rec.get(kind)) not in allowed:
                    fail(n, "relation not selected: " + line.strip())
                need = {"insert": {"new"}, "delete": {"old"}, "truncate": set(),
                        "update": {"new", "old"} if kind == "view" else {"new"}}.get(op)
                if need is None:
                    fail(n, "unknown op: " + line.strip())
                if not need <= set(rec) or not set(rec) <= {kind, "op", "old", "new"}:
                    fail(n, "malformed %s record: %s" % (op, line.strip()))
                counts[(rec[kind], op)] += 1
                changes_in_txn += 1
    if open_txn is not None:
        fail(n, "stream ends inside a transaction")
    for kind, name in sorted(allowed):
        if not any(rel == name for rel, _ in counts):
            fail(n, "no change of %s %s streamed" % (kind, name))
    if committed_markers == 0:
        fail(0, "no committed marker found: the stream misses committed work")
    print("%s: %d transactions, %d changes, %d lines with committed markers" % (
        args.file, txns, sum(counts.values()), committed_markers))
    for (rel, op), c in sorted(counts.items()):
        print("  %-40s %-8s %6d" % (rel, op, c))


if __name__ == "__main__":
    main()

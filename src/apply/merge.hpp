// merge.hpp: an aggregate view's state merged row by row, below SQL.
//
// The state upsert (plan::sql_agg_upsert_rows) is an INSERT ... ON CONFLICT
// DO UPDATE whose conflict branch adds each changed group's delta to its
// state row, then finalizes the group into its view row.  For the one-row
// changes of OLTP writes that statement's setup (a ModifyTable with its
// speculative insertion, the RETURNING and three CTEs over it) costs more
// than computing the deltas.  Here the deltas come from a read-only
// statement (plan::sql_agg_deltas) and each group's row is then locked,
// merged and finalized with the same functions the statement calls (the
// state type's `+`, the btree comparison MIN/MAX order by, int8 arithmetic,
// numeric division), so that the state and the view rows are the statement's
// to the byte (but for a new group's sums over values that cancelled out, 0
// there and NULL here, neither ever read).
//
// A new group's row is inserted as the statement's INSERT would be (a
// speculative insertion: of two writers inserting the same group, one waits
// for the other and then finds its row), holding no rows, then merged into.
// A row that went before it could be locked makes the merge step aside, with
// nothing merged (the groups locked so far stay locked, as the statement
// would lock them, and new groups' rows stay, holding nothing): the caller
// then runs the statement.
#pragma once
#include "plan/sqlgen.hpp"
#include "pg/spi.hpp"

#include <optional>

namespace ivm::apply {

// Merged: each changed group after the merge, as sql_agg_upsert_rows returns
// it: g<j>, a<i> (finalized), __cnt, __dirty, __live and the view row c<i>;
// in the connection's memory.
struct Merged : pg::Tuples {
  bool dirty = false;    // some group lost its MIN/MAX: recompute it
  bool nulls = false;    // some group key is NULL
  bool emptied = false;  // some group lost its last row
};

// merge_state: merges the per-group deltas `d` (the rows of
// plan::sql_agg_deltas, or their fold: fold.hpp) into the state of view p
// (plan::state_mergeable), under READ COMMITTED (apply::keyed_possible).
// nullopt, with no delta merged, when a group's row went meanwhile, or the
// state table is not as the plan says (the caller then runs the upsert
// statement).
std::optional<Merged> merge_state(pg::Spi& spi, const plan::ViewPlan& p, const pg::Tuples& d);

}  // namespace ivm::apply

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
// to the byte.
//
// Only for every group already having its state row: a new group must be
// inserted racing other writers of the same group, which is what ON
// CONFLICT is for.  Then, with nothing written (the groups locked so far stay
// locked, as the statement would lock them), the caller runs the statement.
#pragma once
#include "plan/sqlgen.hpp"
#include "pg/spi.hpp"

#include <optional>

namespace ivm::apply {

// Merged: each changed group after the merge, as sql_agg_upsert_rows returns
// it: g<j>, a<i> (finalized), __cnt, __dirty, __live and the view row c<i>;
// `n` tuples `rows` of row type `desc`, in the connection's memory.
struct Merged {
  TupleDesc desc = nullptr;
  HeapTuple* rows = nullptr;
  uint64 n = 0;
  bool dirty = false;    // some group lost its MIN/MAX: recompute it
  bool nulls = false;    // some group key is NULL
  bool emptied = false;  // some group lost its last row
};

// merge_state: merges the per-group deltas of the last SPI result (the rows
// of plan::sql_agg_deltas) into the state of view p (plan::state_mergeable),
// under READ COMMITTED (apply::keyed_possible).  nullopt, with no state
// written, when a group has no state row yet, or the state table is not as
// the plan says (the caller then runs the upsert statement).
std::optional<Merged> merge_state(pg::Spi& spi, const plan::ViewPlan& p);

// groups_store: the merged groups as a tuplestore in the connection's
// memory, registered as plan::kGroupsRelation for the SQL steps that read it.
void register_groups(pg::Spi& spi, const Merged& m);

}  // namespace ivm::apply

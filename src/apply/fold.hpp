// fold.hpp: an aggregate view's per-group deltas summed below SQL.
//
// plan::sql_agg_deltas computes each changed group's delta in SQL: a
// HashAggregate over the change, one more aggregate per MIN/MAX (the net
// change of each distinct value), joined group by group on a composite of
// the group.  For a bulk change that statement costs more than the rest of
// the view's maintenance (perf, 100,000 orders: 1.2 s of 5.1 s, numeric sums
// of int8 products and record comparisons), and for a one-row change its
// executor setup costs more than its run.  Here the change's rows sorted by
// group (plan::sql_agg_delta_rows, or the same computed below SQL by
// apply/computed.hpp) are summed, group by group, into the rows
// sql_agg_deltas would return: the same columns (the state table's), the
// same values (counts in int8, exact sums in the state's own type, the same
// extremes with their net counts).
#pragma once
#include "plan/sqlgen.hpp"
#include "pg/spi.hpp"

#include <optional>

namespace ivm::apply {

// fold_deltas: the deltas of `rows` (those of plan::sql_agg_delta_rows, from
// the statement or apply/computed.hpp agg_delta_rows), in the connection's
// memory: per changed group,
// its delta as a row of the state table's type (g<j>, __cnt, a<i>, n<i>,
// x<i>, d<i>, dc<i>, __dirty), sorted by group; nullopt when a
// column is not of the type the state table holds, or a group or extreme
// has no btree ordering (the caller then runs sql_agg_deltas).
std::optional<pg::Tuples> fold_deltas(pg::Spi& spi, const plan::ViewPlan& p, const pg::Tuples& rows);

}  // namespace ivm::apply

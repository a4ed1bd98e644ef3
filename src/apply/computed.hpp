// computed.hpp: the rows a view's maintenance computes from a change,
// computed below SQL with the view's own expressions (exprs.hpp).
//
// Two statements start most maintenance: the rows an aggregate's change is
// summed by (plan::sql_agg_delta_rows, summed by fold.hpp) and a keyed
// view's rows of the changed keys (plan::sql_spj_rows, written by
// keyed.hpp).  Both are cheap to run and dear to start: for one OLTP
// transaction their executor setup costs more than their run.
//
// For an aggregate of one relation, each changed row that passes the WHERE
// gives its groups and aggregate arguments (cast as the statement casts
// them), sorted by group; rows of a group with equal images cancel, as the
// statement's consolidation of the change did.
//
// For a view without aggregates that has a key (plan::keyed_columns),
// plan::sql_spj_rows says, per changed key, what the view's row of that key
// becomes; keyed.hpp then writes the rows.  Two shapes are computed here
// instead, with the view's own expressions on rows read from the change and
// the leaves' indexes:
//   - a projection of one relation, with or without WHERE: each changed row
//     projected, the projections summed (equal images cancel) and, per
//     locator value, the added row if there is one, else the removed one;
//   - a join of relations that all share the view's key, each unique on it
//     (plan::ViewPlan::unique_key), as a chain of inner and left joins from
//     one relation: per changed key, one probe of each relation's index on
//     its key column, the join conditions, the WHERE and the outputs
//     evaluated on the joined row.
// Every other shape, and every case below that steps aside, runs the
// statement.  ivm.maintenance_paths() counts both ('rows computed below
// SQL', 'rows computed by statement').
#pragma once
#include "plan/sqlgen.hpp"
#include "pg/spi.hpp"

#include <optional>

namespace ivm::apply {

// spj_rows: the rows sql_spj_rows(p, c) would return (the same columns, in
// key order), or nullopt when this view or change needs the statement: a
// shape other than the two above, an expression exprs.hpp cannot evaluate,
// a change not held in memory, a leaf the view's owner may not read whole
// (no SELECT right on the table, or row security) or without an index on
// its key column, a key of another type than the others', or a key with
// two rows where the plan says one.  Only where keyed_possible().
std::optional<pg::Tuples> spj_rows(pg::Spi& spi, const plan::ViewPlan& p, const plan::Changes& c);

// agg_delta_rows: the rows sql_agg_delta_rows(p, c) would return (g<j>,
// v<i>, f<i>, __m, sorted by group), or nullopt when the statement must run:
// a view of more than one relation or not foldable, an expression exprs.hpp
// cannot evaluate, a change not held in memory, a group type without a
// btree ordering.
std::optional<pg::Tuples> agg_delta_rows(pg::Spi& spi, const plan::ViewPlan& p, const plan::Changes& c);

}  // namespace ivm::apply

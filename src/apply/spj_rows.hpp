// spj_rows.hpp: what a keyed view's rows of the changed keys become,
// computed below SQL.
//
// For a view without aggregates that has a key (plan::keyed_columns),
// plan::sql_spj_rows says, per changed key, what the view's row of that key
// becomes; keyed.hpp then writes the rows.  That statement is cheap to run
// and dear to start: for one OLTP transaction its executor setup costs more
// than its run.  Two shapes are computed here instead, with the view's own
// expressions (exprs.hpp) on rows read from the change and the leaves'
// indexes:
//   - a projection of one relation, with or without WHERE: each changed row
//     projected, the projections summed (equal images cancel) and, per
//     locator value, the added row if there is one, else the removed one;
//   - a join of relations that all share the view's key, each unique on it
//     (plan::ViewPlan::unique_key), as a chain of inner and left joins from
//     one relation: per changed key, one probe of each relation's index on
//     its key column, the join conditions, the WHERE and the outputs
//     evaluated on the joined row.
// Every other shape, and every case below that steps aside, runs the
// statement.
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

}  // namespace ivm::apply

// load.hpp: a view filled from scratch (create_view, refresh), below SQL.
//
// The view's query gives its rows (plan::sql_populate); an aggregate view's
// query gives, per group, the state row and the view row together.  Written
// by INSERT ... SELECT, every row goes through the executor's ModifyTable one
// at a time, and an aggregate view is written twice: its state, then the view
// read back from the state.  Here the query's rows are split as they come
// and written in batches through the table AM's multi-insert, as COPY FROM
// writes (one WAL record per page of rows instead of one per row), with each
// table's constraints and indexes checked and maintained as an INSERT would.
//
// Only into plain tables (rows::plain) whose columns take the query's values
// as they are; otherwise, or under a SnapshotScope, the INSERT statements
// run instead.  ivm.maintenance_paths() counts which way each fill went.
#pragma once
#include "plan/ir.hpp"
#include "pg/spi.hpp"

#include <cstdint>

namespace ivm::apply {

// populate: fills view p, and its aggregate state, with what its query gives
// now; both are empty.  Returns the number of rows the view got.
std::uint64_t populate(pg::Spi& spi, const plan::ViewPlan& p);

}  // namespace ivm::apply

// keyed.hpp: writing a view's rows by key, below SQL.
//
// An aggregate view has one row per group.  Once the state upsert has
// returned each changed group with its new view row, what is left is, per
// group: find the group's row in the view (one probe of the view's group
// index), then update it in place, insert it or delete it.  As a generated
// SQL statement that is three data-modifying CTEs, and the executor sets up
// every node of them, run or not, for each change: for a one-row OLTP write
// the setup costs as much as the run.  Here the rows are written through the
// executor's single-row routines (those logical replication applies rows
// with: constraints, every index, row triggers), with nothing to set up but
// the view's indexes.
#pragma once
#include "plan/ir.hpp"
#include "pg/spi.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace ivm::apply {

// keyed_possible: whether this transaction may write views by key at all.
// Not under REPEATABLE READ or SERIALIZABLE: there a row changed by a
// concurrent transaction must fail the write with a serialization error, as
// the SQL statement's would; the SQL path keeps that behaviour.
bool keyed_possible();

// apply_keyed: writes the rows of the last SPI result (sql_agg_upsert_rows)
// into the view of plan p: per row, the view's row of its group becomes c<i>
// when __live, and goes when not.  Registers the view's change (its columns
// and __m) as relation `change` when that is not "", and returns its size.
// nullopt, with nothing written, when the view's table cannot be written
// this way: a trigger other than ivm's guard (a user's trigger or a foreign
// key must see the SQL statement they expect), no index on exactly the group
// columns, inheritance children, or a column whose type is a domain (whose
// checks run when a value is cast to it, which writing a row does not do).
//
// Concurrency: the caller holds the row locks of the groups' state rows (the
// upsert took them), so no other writer changes these view rows until this
// transaction ends, and a fresh snapshot sees what the writers before it
// committed.
std::optional<std::uint64_t> apply_keyed(pg::Spi& spi, const plan::ViewPlan& p, const std::string& change);

}  // namespace ivm::apply

// keyed.hpp: writing a view's rows by key, below SQL.
//
// Many views have at most one row per value of some columns (the key:
// plan::keyed_columns): an aggregate view per group, a view without
// aggregates per value of a unique column.  Once an SQL statement has said
// what the rows of the changed keys become (sql_agg_upsert_rows,
// sql_spj_rows), what is left is, per key: find the key's row in the view
// (one probe of the view's index on the key), then update it in place,
// insert it or delete it.  As generated SQL that is three data-modifying
// CTEs, and the executor sets up every node of them, run or not, for each
// change: for a one-row OLTP write the setup costs as much as the run.  Here
// the rows are written through the executor's single-row routines (those
// logical replication applies rows with: constraints, every index), with
// nothing to set up but the view's indexes.
#pragma once
#include "plan/sqlgen.hpp"
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

// apply_keyed: writes the rows of the last SPI result into the view of plan
// p: per row, the view's row of its key (the key columns among c<i>) becomes
// c0, c1, ... when __live, and goes when not.  Registers the view's change
// (its columns and __m) as relation `change` when that is not "", and
// returns its size.  nullopt, with nothing written, when the view's table
// cannot be written this way: the owner lacks a right on the table (the
// SQL statements then fail as they would have), a trigger other than ivm's guard (a user's
// trigger or a foreign key must see the SQL statement they expect), no index
// on exactly the key columns, inheritance children, a column whose type is a
// domain (whose checks run when a value is cast to it, which writing a row
// does not do), or a result row whose __m is not 1 or -1.
//
// Concurrency: the caller holds what serializes the writers of a key (the
// state row locks the upsert took, the view's key locks, or the base row the
// key comes from), so no other writer changes these view rows until this
// transaction ends, and a fresh snapshot sees what the writers before it
// committed.  Should one change anyway, the write fails ("tuple concurrently
// updated") rather than lose it.
std::optional<std::uint64_t> apply_keyed(pg::Spi& spi, const plan::ViewPlan& p, const std::string& change);
// The same for rows held elsewhere.
std::optional<std::uint64_t> apply_keyed(pg::Spi& spi, const plan::ViewPlan& p, const std::string& change,
                                         const pg::Tuples& rows);

// lock_keys: takes the view's key locks for the changes c, as
// plan::sql_lock_keys does (each key's row in the key-lock table updated, or
// inserted as ON CONFLICT inserts it, in key order), when every changed
// leaf's key is a plain column of its change; returns false otherwise, or
// when a key's row went before it could be locked (some keys may be locked
// already), and the caller runs the SQL statement, which locks them all.
// Only where keyed_possible(): under REPEATABLE READ the statement's ON
// CONFLICT must raise the serialization failure.
bool lock_keys(pg::Spi& spi, const plan::ViewPlan& p, const plan::Changes& c);

}  // namespace ivm::apply

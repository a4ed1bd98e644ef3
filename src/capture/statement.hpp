// statement.hpp: statement boundaries, for changes that must be maintained
// together.
//
// A statement trigger sees its own table's change, and the other tables as
// they are *now*.  That is right when the statement changed one table, but
// not when it changed several: a foreign key's ON DELETE CASCADE, a writable
// CTE, or a trigger of the statement writing to another table.  The first
// capture would join its change with another table that already holds a
// change whose capture has not run yet, and the pair would be counted twice
// or never.  So such changes are buffered, and when the enclosing statement
// finishes (executor hooks), all of them are maintained in one pass, where
// the join rules see every changed table at once.
#pragma once
#include "pg/spi.hpp"

#include <cstdint>
#include <map>

namespace ivm::capture {

// Stores: one base table's buffered change, its new and old rows.
struct Stores {
  Tuplestorestate* inserted = nullptr;
  Tuplestorestate* deleted = nullptr;
  TupleDesc inserted_desc = nullptr;
  TupleDesc deleted_desc = nullptr;
};
using Buffered = std::map<std::uint32_t, Stores>;

// maintain_buffered: maintains the buffered changes of several base tables
// in one pass (each view sees them all at once), as a statement's own
// change would be.  The stores stay the caller's.
void maintain_buffered(const Buffered& changes);
// copy_rows: appends every row of a trigger's transition table to `store`
// (created in `cxt` on first use, with a copy of the row type in `desc`),
// without SPI; the transition table stays as other triggers will find it.
void copy_rows(MemoryContext cxt, Tuplestorestate*& store, TupleDesc& desc, Tuplestorestate* from, TupleDesc from_desc);
// statement_under_way: whether a data-modifying statement is running.
bool statement_under_way();
// has_user_triggers: whether changing the relation fires triggers other than
// ivm's and foreign-key checks (foreign-key actions, users' triggers).
bool has_user_triggers(Oid relid);

void install_hooks();
// buffer_if_nested: buffers the trigger's change when it belongs to a larger
// statement (see above); returns false when it must be maintained now.
bool buffer_if_nested(TriggerData* td);
// buffering: whether some statement under way holds buffered changes.
bool buffering();
void reset();  // at transaction abort

}  // namespace ivm::capture

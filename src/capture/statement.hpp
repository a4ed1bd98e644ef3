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

namespace ivm::capture {

void install_hooks();
// buffer_if_nested: buffers the trigger's change when it belongs to a larger
// statement (see above); returns false when it must be maintained now.
bool buffer_if_nested(pg::Spi& spi, TriggerData* td);
void reset();  // at transaction abort

}  // namespace ivm::capture

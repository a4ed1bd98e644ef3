// transaction.hpp: a transaction's changes, maintained together.
//
// With ivm.immediate_apply = 'transaction', the statement triggers of
// immediate views buffer each statement's change instead of maintaining the
// views at once.  The buffer is maintained in one pass, as if one statement
// had made all of it, just before anything could see the views:
//   - before a statement that reads an incremental view's table starts (its
//     snapshot then also sees the maintained rows: read-your-writes holds),
//   - before a utility statement (DDL, COPY, TRUNCATE, ...),
//   - when an ivm function starts,
//   - at COMMIT and PREPARE TRANSACTION,
//   - when it grows past a large batch, and when maintenance is asked for
//     anyway (the setting went back to 'statement').
// A transaction of several single-row statements thus starts each view's
// delta steps once instead of once per statement.  A savepoint rolled back
// takes its statements' changes out of the buffer (and puts back what a
// maintenance inside it had consumed).
#pragma once
#include "capture/statement.hpp"

namespace ivm::capture {

// transaction_init: the setting, the hooks and the transaction callbacks.
void transaction_init();
// buffer_for_transaction: buffers a statement trigger's change when the
// transaction's changes are maintained together; returns false when the
// caller must maintain it now (nothing buffered then).
bool buffer_for_transaction(TriggerData* td);
// adopt_statement: takes a copy of a finished statement's buffered changes
// (statement.hpp) into the transaction's buffer; false when the caller must
// maintain them now.
bool adopt_statement(Buffered& changes);
// flush_transaction: maintains whatever is buffered, now.
void flush_transaction();

}  // namespace ivm::capture

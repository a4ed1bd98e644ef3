// pg.hpp: the one place PostgreSQL's headers are included from C++.
// Include it first in every .cpp of src/ that talks to the server (never from
// src/plan).  The headers are C, so they are wrapped in extern "C".
#pragma once

extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/heap.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"
#include "utils/varlena.h"
#include "utils/regproc.h"
#include "storage/lmgr.h"
}

namespace ivm::pg {

// begin_own_scan / end_own_scan: read a tuplestore from its first row
// through a read pointer of its own, so that its other readers (a trigger's
// transition table other triggers will see, a change that statements read
// as a relation) keep their places; end_own_scan gives back the default
// pointer.  (Tuplestores cannot free a read pointer: one per scan.)
inline void begin_own_scan(Tuplestorestate* store) {
  tuplestore_select_read_pointer(store, tuplestore_alloc_read_pointer(store, EXEC_FLAG_REWIND));
  tuplestore_rescan(store);
}
inline void end_own_scan(Tuplestorestate* store) { tuplestore_select_read_pointer(store, 0); }

// PostgreSQL 15 declares walkers and mutators as unprototyped C function
// pointers; C++ needs an explicit (and harmless) cast through void (*)().
typedef bool (*Walker)();
typedef Node* (*Mutator)();
template <typename T, typename F>
T fn_cast(F f) {
  return reinterpret_cast<T>(reinterpret_cast<void (*)()>(f));
}

// xact_aborted / xact_ended: the transaction callback events after which a
// transaction's own state (buffers, origin setup, scopes) must be gone: an
// abort, or any end (COMMIT, ABORT, PREPARE, and their parallel-worker twins).
inline bool xact_aborted(XactEvent event) { return event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT; }
inline bool xact_ended(XactEvent event) {
  return xact_aborted(event) || event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
         event == XACT_EVENT_PREPARE;
}

}  // namespace ivm::pg

// triggers.cpp: immediate-mode capture.  One set of AFTER ... FOR EACH
// STATEMENT triggers per base table, with transition tables, serves every
// view that reads the table; a BEFORE trigger on each view table refuses
// direct changes by users.  A row trigger does the same for the changes a
// subscription's apply worker makes, which fires no statement trigger.
#include "apply/maintain.hpp"
#include "capture/statement.hpp"
#include "capture/transaction.hpp"
#include "catalog/catalog.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "catalog/pg_subscription_rel.h"
#include "replication/logicalworker.h"
#include "replication/worker_internal.h"
}

using namespace ivm;

namespace {

// record_directly: the fast path of a write that only deferred views read
// directly.  Returns false when the general path must run.
bool record_directly(TriggerData* td, std::uint32_t relid) {
  const catalog::CaptureRoute* cached = catalog::cached_capture_route(relid);
  if (!cached || cached->immediate_readers) return false;
  if (cached->delta == 0) return true;  // nothing reads it
  // A copy: opening a relation may process invalidations, which empty the cache.
  const catalog::CaptureRoute copy = *cached;
  const catalog::CaptureRoute* route = &copy;
  return pg::pg_call([&] {
    TupleDesc source = RelationGetDescr(td->tg_relation);
    for (int a : route->attnums)
      if (a < 1 || a > source->natts || TupleDescAttr(source, a - 1)->attisdropped) return false;
    Relation delta = table_open(route->delta, RowExclusiveLock);
    if (RelationGetDescr(delta)->natts != static_cast<int>(route->attnums.size()) + 2) {
      table_close(delta, RowExclusiveLock);
      return false;
    }
    TimestampTz at = GetCurrentTimestamp();
    if (td->tg_newtable)
      catalog::append_rows(delta, td->tg_newtable, source, route->attnums.data(),
                           static_cast<int>(route->attnums.size()), 0, 1, at);
    if (td->tg_oldtable)
      catalog::append_rows(delta, td->tg_oldtable, source, route->attnums.data(),
                           static_cast<int>(route->attnums.size()), 0, -1, at);
    table_close(delta, NoLock);
    return true;
  });
}

// ivms_own: whether the trigger firing is one of the capture triggers ivm
// created on the table (their names are unique per table, only the table's
// owner may drop them, and create_view checks an existing one).  Anyone who
// may create triggers on a base table could otherwise attach ivm.capture() a
// second time, and the views would receive every change twice.
bool ivms_own(const TriggerData* td) {
  TriggerEvent e = td->tg_event;
  if (!TRIGGER_FIRED_FOR_STATEMENT(e)) return false;
  const char* want = TRIGGER_FIRED_BY_INSERT(e)   ? "ivm_capture_ins"
                     : TRIGGER_FIRED_BY_UPDATE(e) ? "ivm_capture_upd"
                     : TRIGGER_FIRED_BY_DELETE(e) ? "ivm_capture_del"
                     : TRIGGER_FIRED_BEFORE(e)    ? "ivm_capture_btrunc"
                                                  : "ivm_capture_trunc";
  if (!TRIGGER_FIRED_BY_TRUNCATE(e) && !TRIGGER_FIRED_AFTER(e)) return false;
  return strcmp(td->tg_trigger->tgname, want) == 0;
}

}  // namespace

namespace {

// capture_change: a statement's change of a base table (transition tables in td).
Datum capture_change(TriggerData* td) {
  std::uint32_t relid = RelationGetRelid(td->tg_relation);
  bool truncate = TRIGGER_FIRED_BY_TRUNCATE(td->tg_event);
  if (!truncate) {
    if (record_directly(td, relid)) return PointerGetDatum(nullptr);
    if (!catalog::cached_capture_route(relid)) {
      pg::Spi spi;
      pg::PinnedSearchPath pinned;
      (void)catalog::capture_route(spi, relid);  // so that the next write may take the fast path
    }
    // Part of a larger statement, or of the transaction's changes: maintained later.
    if (capture::buffer_if_nested(td) || capture::buffer_for_transaction(td)) return PointerGetDatum(nullptr);
  }
  pg::Spi spi;
  pg::PinnedSearchPath pinned;
  if (truncate && TRIGGER_FIRED_BEFORE(td->tg_event)) {
    // Deferred views will see the vanishing rows as deletions.
    apply::record_truncate(spi, relid);
  } else if (truncate) {
    // TRUNCATE has no transition table; the table is now empty, so the
    // immediate views reading it are rebuilt.
    apply::refresh_dependents(spi, relid);
  } else {
    spi.register_trigger_data(td);
    plan::DeltaSource source{td->tg_newtable ? "ivm_new" : "", td->tg_oldtable ? "ivm_old" : "", ""};
    std::uint64_t rows = pg::pg_call([td] {
      return static_cast<std::uint64_t>((td->tg_newtable ? tuplestore_tuple_count(td->tg_newtable) : 0) +
                                        (td->tg_oldtable ? tuplestore_tuple_count(td->tg_oldtable) : 0));
    });
    apply::LargeBatch settings(spi, rows);
    apply::propagate(spi, {{relid, source}}, apply::Phase::Write);
  }
  return PointerGetDatum(nullptr);
}

}  // namespace

IVM_FUNCTION(ivm_capture) {
  if (!CALLED_AS_TRIGGER(fcinfo))
    throw pg::Error(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, "ivm.capture() must be called as a trigger");
  auto* td = reinterpret_cast<TriggerData*>(fcinfo->context);
  if (!ivms_own(td))
    throw pg::Error(
        ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
        std::string("ivm.capture() fired by trigger \"") + td->tg_trigger->tgname + "\", which is not ivm's",
        "ivm creates its capture triggers itself, when a view starts reading the table.", "Drop that trigger.");
  return capture_change(td);
}

// ivm_capture_row: ENABLE REPLICA row trigger for a subscription's apply
// worker, which fires row triggers only.  Each replicated row change is a
// query of its own there (its AFTER triggers fire right after it), so the
// row is captured as a statement that changed one row.  Anywhere else the
// statement triggers (ENABLE ALWAYS) capture: in a session with
// session_replication_role = replica, and for the initial copy of a table by
// a subscription's table synchronization (COPY fires them, with the whole
// copy in the transition table).
IVM_FUNCTION(ivm_capture_row) {
  if (!CALLED_AS_TRIGGER(fcinfo))
    throw pg::Error(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, "ivm.capture_row() must be called as a trigger");
  auto* td = reinterpret_cast<TriggerData*>(fcinfo->context);
  if (!TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_AFTER(td->tg_event))
    throw pg::Error(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                    "ivm.capture_row() must be an AFTER ... FOR EACH ROW trigger");
  bool replicating = pg::pg_call([] {
    if (!IsLogicalWorker()) return false;
    if (!am_tablesync_worker()) return true;
    SpinLockAcquire(&MyLogicalRepWorker->relmutex);
    char state = MyLogicalRepWorker->relstate;
    SpinLockRelease(&MyLogicalRepWorker->relmutex);
    return state != SUBREL_STATE_DATASYNC;
  });
  if (!replicating) return PointerGetDatum(nullptr);
  TriggerData one = *td;
  Trigger trigger = *td->tg_trigger;
  one.tg_trigger = &trigger;
  one.tg_newtable = one.tg_oldtable = nullptr;
  pg::pg_call([&] {
    HeapTuple new_row = nullptr, old_row = nullptr;
    if (TRIGGER_FIRED_BY_INSERT(td->tg_event)) {
      new_row = td->tg_trigtuple;
    } else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event)) {
      old_row = td->tg_trigtuple;
      new_row = td->tg_newtuple;
    } else if (TRIGGER_FIRED_BY_DELETE(td->tg_event)) {
      old_row = td->tg_trigtuple;
    }
    one.tg_event = td->tg_event & ~TRIGGER_EVENT_ROW;
    auto store = [](HeapTuple row) {
      Tuplestorestate* s = tuplestore_begin_heap(false, false, work_mem);
      tuplestore_puttuple(s, row);
      return s;
    };
    if (new_row) {
      one.tg_newtable = store(new_row);
      trigger.tgnewtable = const_cast<char*>("ivm_new");
    }
    if (old_row) {
      one.tg_oldtable = store(old_row);
      trigger.tgoldtable = const_cast<char*>("ivm_old");
    }
  });
  capture_change(&one);
  pg::pg_call([&] {
    if (one.tg_newtable) tuplestore_end(one.tg_newtable);
    if (one.tg_oldtable) tuplestore_end(one.tg_oldtable);
  });
  return PointerGetDatum(nullptr);
}

IVM_FUNCTION(ivm_guard) {
  if (!CALLED_AS_TRIGGER(fcinfo))
    throw pg::Error(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, "ivm.guard() must be called as a trigger");
  auto* td = reinterpret_cast<TriggerData*>(fcinfo->context);
  if (!apply::MaintenanceScope::allows(RelationGetRelid(td->tg_relation))) {
    std::string name = pg::pg_call([&] { return std::string(RelationGetRelationName(td->tg_relation)); });
    throw pg::Error(ERRCODE_WRONG_OBJECT_TYPE, "cannot change incremental view \"" + name + "\"",
                    "Its rows are maintained by ivm from its base tables.",
                    "Change the base tables, or use ivm.refresh() to rebuild the view.");
  }
  return PointerGetDatum(nullptr);
}

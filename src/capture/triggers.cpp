// triggers.cpp: immediate-mode capture.  One set of AFTER ... FOR EACH
// STATEMENT triggers per base table, with transition tables, serves every
// view that reads the table; a BEFORE trigger on each view table refuses
// direct changes by users.
#include "apply/maintain.hpp"
#include "capture/statement.hpp"
#include "pg/spi.hpp"

using namespace ivm;

IVM_FUNCTION(ivm_capture) {
  if (!CALLED_AS_TRIGGER(fcinfo))
    throw pg::Error(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, "ivm.capture() must be called as a trigger");
  auto* td = reinterpret_cast<TriggerData*>(fcinfo->context);
  std::uint32_t relid = RelationGetRelid(td->tg_relation);
  pg::Spi spi;
  pg::PinnedSearchPath pinned;
  if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event) && TRIGGER_FIRED_BEFORE(td->tg_event)) {
    // Deferred views will see the vanishing rows as deletions.
    apply::record_truncate(spi, relid);
  } else if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event)) {
    // TRUNCATE has no transition table; the table is now empty, so the
    // immediate views reading it are rebuilt.
    apply::refresh_dependents(spi, relid);
  } else {
    spi.register_trigger_data(td);
    if (capture::buffer_if_nested(spi, td)) return PointerGetDatum(nullptr);
    plan::DeltaSource source{td->tg_newtable ? "ivm_new" : "", td->tg_oldtable ? "ivm_old" : "", ""};
    apply::propagate(spi, {{relid, source}}, apply::Phase::Write);
  }
  return PointerGetDatum(nullptr);
}

IVM_FUNCTION(ivm_guard) {
  if (!CALLED_AS_TRIGGER(fcinfo))
    throw pg::Error(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, "ivm.guard() must be called as a trigger");
  if (!apply::MaintenanceScope::active()) {
    auto* td = reinterpret_cast<TriggerData*>(fcinfo->context);
    std::string name = pg::pg_call([&] { return std::string(RelationGetRelationName(td->tg_relation)); });
    throw pg::Error(ERRCODE_WRONG_OBJECT_TYPE, "cannot change incremental view \"" + name + "\"",
                    "Its rows are maintained by ivm from its base tables.",
                    "Change the base tables, or use ivm.refresh() to rebuild the view.");
  }
  return PointerGetDatum(nullptr);
}

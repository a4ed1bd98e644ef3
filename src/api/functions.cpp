// functions.cpp: the SQL-callable API.  Thin: check arguments, delegate.
#include "apply/maintain.hpp"
#include "apply/wal.hpp"
#include "apply/worker.hpp"
#include "capture/statement.hpp"
#include "catalog/catalog.hpp"
#include "plan/sqlgen.hpp"
#include "pg/spi.hpp"

using namespace ivm;

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

namespace {

std::string text_arg(FunctionCallInfo fcinfo, int n, const char* what) {
  if (PG_ARGISNULL(n))
    throw pg::Error(ERRCODE_NULL_VALUE_NOT_ALLOWED, std::string(what) + " must not be null");
  return pg::pg_call([&] { return std::string(text_to_cstring(PG_GETARG_TEXT_PP(n))); });
}

// on_xact: a safety net.  Maintenance scopes and statement frames unwind
// with the errors that end them; after a transaction abort none can remain.
void on_xact(XactEvent event, void*) {
  if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT) {
    apply::MaintenanceScope::reset();
    capture::reset();
  }
}

}  // namespace

void _PG_init(void) {
  RegisterXactCallback(on_xact, nullptr);
  capture::install_hooks();
  apply::worker_init();
  wal::init();
}

IVM_FUNCTION(ivm_create_view) {
  std::string name = text_arg(fcinfo, 0, "view name");
  std::string query = text_arg(fcinfo, 1, "query");
  std::string mode = PG_ARGISNULL(2) ? "immediate" : text_arg(fcinfo, 2, "mode");
  pg::Spi spi;
  if (mode == "wal") wal::prepare(spi);  // before anything is written
  std::uint32_t oid = catalog::create_view(spi, name, query, mode);
  return ObjectIdGetDatum(oid);
}

IVM_FUNCTION(ivm_drop_view) {
  std::string name = text_arg(fcinfo, 0, "view name");
  pg::Spi spi;
  catalog::drop_view(spi, catalog::lookup(spi, name));
  PG_RETURN_VOID();
}

IVM_FUNCTION(ivm_refresh) {
  std::string name = text_arg(fcinfo, 0, "view name");
  pg::Spi spi;
  std::uint64_t rows = apply::refresh(spi, catalog::lookup(spi, name));
  PG_RETURN_INT64(static_cast<int64>(rows));
}

IVM_FUNCTION(ivm_verify) {
  std::string name = text_arg(fcinfo, 0, "view name");
  pg::Spi spi;
  std::uint64_t diff = apply::verify(spi, catalog::lookup(spi, name));
  PG_RETURN_INT64(static_cast<int64>(diff));
}

IVM_FUNCTION(ivm_explain) {
  std::string name = text_arg(fcinfo, 0, "view name");
  std::string text;
  {
    // The result must outlive the SPI connection's memory.
    pg::Spi spi;
    text = plan::explain(catalog::load_plan(spi, catalog::lookup(spi, name)));
  }
  return pg::pg_call([&] { return PointerGetDatum(cstring_to_text(text.c_str())); });
}

IVM_FUNCTION(ivm_apply_deltas) {
  pg::Spi spi;
  std::uint32_t view = PG_ARGISNULL(0) ? 0 : catalog::lookup(spi, text_arg(fcinfo, 0, "view name"));
  TimestampTz start = GetCurrentTimestamp();
  std::uint64_t rows = apply::apply_deltas(spi, view);
  long secs = 0;
  int usecs = 0;
  TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);
  std::string duration = std::to_string(secs) + " seconds " + std::to_string(usecs) + " microseconds";
  spi.exec_once("INSERT INTO ivm.apply_stats AS s (viewid, last_apply, last_duration, applies) "
                "SELECT viewid, pg_catalog.now(), '" + duration + "'::interval, 1 FROM ivm.views WHERE mode <> 'immediate'" +
                (view ? " AND viewid = " + std::to_string(view) : std::string()) +
                " ON CONFLICT (viewid) DO UPDATE SET last_apply = EXCLUDED.last_apply, "
                "last_duration = EXCLUDED.last_duration, applies = s.applies + 1");
  PG_RETURN_INT64(static_cast<int64>(rows));
}

IVM_FUNCTION(ivm_set_mode) {
  std::string name = text_arg(fcinfo, 0, "view name");
  std::string mode = text_arg(fcinfo, 1, "mode");
  pg::Spi spi;
  std::uint32_t view = catalog::lookup(spi, name);
  std::string old = catalog::view_mode(spi, view);
  if (old != mode) {
    if (mode == "wal") {
      wal::prepare(spi);  // before anything is written
      for (std::uint32_t t : catalog::base_tables(spi, view)) catalog::full_replica_identity(spi, t);
    }
    // Writers wait while the mode changes: every change is then either
    // maintained by its writer or found in a delta table, never both (in
    // mode wal: decoded from WAL from this transaction's commit on; what
    // committed before is applied here).
    catalog::lock_base_tables(spi, view);
    // Leaving deferred: catch up.  Entering it: the changes other deferred
    // views still wait for are already in this view, so they are applied now
    // rather than handed to it again later.
    // Its own delta table too: changes it made while immediate are owed to
    // its deferred readers before it starts changing only at apply time.
    std::vector<std::uint32_t> relations = catalog::delta_relations(spi, view);
    if (catalog::delta_table(spi, view)) relations.push_back(view);
    apply::apply_relations(spi, relations);
    catalog::set_mode(spi, view, mode);
  }
  PG_RETURN_VOID();
}

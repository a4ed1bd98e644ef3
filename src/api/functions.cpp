// functions.cpp: the SQL-callable API.  Thin: check arguments, delegate.
#include "apply/maintain.hpp"
#include "apply/wal.hpp"
#include "apply/worker.hpp"
#include "capture/statement.hpp"
#include "capture/transaction.hpp"
#include "catalog/catalog.hpp"
#include "plan/sqlgen.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "utils/acl.h"
}

using namespace ivm;

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

namespace {

std::string text_arg(FunctionCallInfo fcinfo, int n, const char* what) {
  if (PG_ARGISNULL(n)) throw pg::Error(ERRCODE_NULL_VALUE_NOT_ALLOWED, std::string(what) + " must not be null");
  return pg::pg_call([&] { return std::string(text_to_cstring(PG_GETARG_TEXT_PP(n))); });
}

// check_owner: only the view's owner (or a member of its role, or a
// superuser) may drop it, rebuild it or change its mode, as for ALTER and DROP
// of any table.
void check_owner(std::uint32_t view, const std::string& name) {
  if (!pg::pg_call([&] { return pg_class_ownercheck(view, GetUserId()); }))
    throw pg::Error(ERRCODE_INSUFFICIENT_PRIVILEGE, "must be owner of incremental view \"" + name + "\"", "",
                    "Only the view's owner can drop it, refresh it or change its mode.");
}

// on_xact: a safety net.  Maintenance scopes and statement frames unwind
// with the errors that end them; after a transaction abort none can remain.
void on_xact(XactEvent event, void*) {
  if (pg::xact_aborted(event)) {
    apply::MaintenanceScope::reset();
    capture::reset();
    catalog::progress_reset();
  }
}

}  // namespace

void _PG_init(void) {
  RegisterXactCallback(on_xact, nullptr);
  capture::install_hooks();
  capture::transaction_init();
  catalog::progress_init();  // before worker_init, which reserves the "ivm." prefix
  apply::worker_init();
  wal::init();
}

IVM_FUNCTION(ivm_create_view) {
  capture::flush_transaction();  // the views first take what the transaction changed
  std::string name = text_arg(fcinfo, 0, "view name");
  std::string query = text_arg(fcinfo, 1, "query");
  std::string mode = PG_ARGISNULL(2) ? "immediate" : text_arg(fcinfo, 2, "mode");
  pg::Spi spi;
  if (mode == "wal") wal::prepare(spi);  // before anything is written
  std::uint32_t oid = catalog::create_view(spi, name, query, mode);
  return ObjectIdGetDatum(oid);
}

IVM_FUNCTION(ivm_drop_view) {
  capture::flush_transaction();  // the views first take what the transaction changed
  std::string name = text_arg(fcinfo, 0, "view name");
  pg::Spi spi;
  std::uint32_t view = catalog::lookup(spi, name);
  check_owner(view, name);
  catalog::drop_view(spi, view);
  PG_RETURN_VOID();
}

IVM_FUNCTION(ivm_refresh) {
  capture::flush_transaction();  // the views first take what the transaction changed
  std::string name = text_arg(fcinfo, 0, "view name");
  pg::Spi spi;
  std::uint32_t view = catalog::lookup(spi, name);
  check_owner(view, name);
  // After ALTER TABLE ... OWNER TO, the view's state follows its new owner.
  catalog::follow_owner(spi, view);
  std::uint64_t rows = apply::refresh(spi, view);
  PG_RETURN_INT64(static_cast<int64>(rows));
}

// ivm_upgrade_view(view regclass): run by the update script from 0.1 for each
// view: what 0.1 did not keep (pg_depend entries, the parse tree of the
// definition), the ownership of its state, replica identity for streaming,
// the counts of MIN/MAX extremes, room on pages for updates in place.
IVM_FUNCTION(ivm_upgrade_view) {
  std::uint32_t view = PG_GETARG_OID(0);
  pg::Spi spi;
  catalog::repair_restored(spi, view);
  catalog::upgrade_storage(spi, view);
  catalog::follow_owner(spi, view);
  spi.exec_once("SELECT internal, name FROM ivm.views WHERE viewid = " + std::to_string(view));
  if (spi.rows() > 0 && !spi.boolean(0, 1)) spi.exec_once("ALTER TABLE " + spi.text(0, 2) + " REPLICA IDENTITY FULL");
  PG_RETURN_VOID();
}

IVM_FUNCTION(ivm_verify) {
  capture::flush_transaction();  // the views first take what the transaction changed
  std::string name = text_arg(fcinfo, 0, "view name");
  pg::Spi spi;
  std::uint32_t view = catalog::lookup(spi, name);
  // verify evaluates the query with the owner's rights and tells only a
  // count, but only to who may read the view.
  if (!pg::pg_call([&] { return pg_class_aclcheck(view, GetUserId(), ACL_SELECT) == ACLCHECK_OK; }))
    throw pg::Error(ERRCODE_INSUFFICIENT_PRIVILEGE, "permission denied for incremental view \"" + name + "\"", "",
                    "ivm.verify() needs the SELECT privilege on the view.");
  std::uint64_t diff = apply::verify(spi, view);
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

IVM_FUNCTION(ivm_path_counts) {
  Datum counts[apply::kPaths];
  for (std::size_t i = 0; i < apply::kPaths; ++i)
    counts[i] = Int64GetDatum(static_cast<int64>(apply::path_count(static_cast<apply::Path>(i))));
  return pg::pg_call([&] {
    return PointerGetDatum(
        construct_array(counts, static_cast<int>(apply::kPaths), INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE));
  });
}

IVM_FUNCTION(ivm_apply_deltas) {
  capture::flush_transaction();  // the views first take what the transaction changed
  pg::Spi spi;
  std::uint32_t view = PG_ARGISNULL(0) ? 0 : catalog::lookup(spi, text_arg(fcinfo, 0, "view name"));
  TimestampTz start = GetCurrentTimestamp();
  std::uint64_t rows = apply::apply_deltas(spi, view);
  long secs = 0;
  int usecs = 0;
  TimestampDifference(start, GetCurrentTimestamp(), &secs, &usecs);
  std::string duration = std::to_string(secs) + " seconds " + std::to_string(usecs) + " microseconds";
  catalog::AsCatalogOwner owner;
  spi.exec_once(
      "INSERT INTO ivm.apply_stats AS s (viewid, last_apply, last_duration, applies) "
      "SELECT viewid, pg_catalog.now(), '" +
      duration + "'::interval, 1 FROM ivm.views WHERE mode <> 'immediate'" +
      (view ? " AND viewid = " + std::to_string(view) : std::string()) +
      " ON CONFLICT (viewid) DO UPDATE SET last_apply = EXCLUDED.last_apply, "
      "last_duration = EXCLUDED.last_duration, applies = s.applies + 1");
  PG_RETURN_INT64(static_cast<int64>(rows));
}

IVM_FUNCTION(ivm_set_mode) {
  capture::flush_transaction();  // the views first take what the transaction changed
  std::string name = text_arg(fcinfo, 0, "view name");
  std::string mode = text_arg(fcinfo, 1, "mode");
  pg::Spi spi;
  std::uint32_t view = catalog::lookup(spi, name);
  check_owner(view, name);
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

// worker.cpp: the background worker that applies deferred views (and views in
// mode wal: each apply first catches up with WAL, apply/wal.cpp).
//
// Loaded with shared_preload_libraries = 'ivm', it starts one worker per
// database listed in ivm.databases; each calls ivm.apply_deltas() every
// ivm.apply_interval.  A failing apply is logged and recorded in
// ivm.apply_stats (shown by ivm.status); the worker then applies each
// deferred view on its own, so views that do not fail keep flowing, and waits
// longer before the next attempt (exponential backoff, at most a minute).
//
// Written in the C style of PostgreSQL's own workers: the loop holds no C++
// objects, and every error is caught with PG_TRY around one transaction.
#include <algorithm>

#include "pg/pg.hpp"

extern "C" {
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/wait_event.h"
PGDLLEXPORT void ivm_worker_main(Datum arg);
}

#include "apply/worker.hpp"

#include <algorithm>

namespace ivm::apply {

namespace {

char* databases = nullptr;
int apply_interval_ms = 1000;
constexpr int kMaxBackoffMs = 60000;

// run_in_transaction: runs sql in a transaction of its own.  Returns false
// (after logging the error and copying its message to *error) when it fails.
bool run_in_transaction(const char* sql, char** error, Datum* args = nullptr, Oid* types = nullptr, int nargs = 0) {
  MemoryContext cxt = CurrentMemoryContext;
  volatile bool ok = true;
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  PushActiveSnapshot(GetTransactionSnapshot());
  pgstat_report_activity(STATE_RUNNING, sql);
  PG_TRY();
  {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    if (nargs > 0)
      SPI_execute_with_args(sql, nargs, types, args, nullptr, false, 0);
    else
      SPI_execute(sql, false, 0);
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(cxt);
    ErrorData* edata = CopyErrorData();
    FlushErrorState();
    AbortCurrentTransaction();
    if (error) *error = pstrdup(edata->message ? edata->message : "unknown error");
    ereport(LOG, (errmsg("ivm apply worker: %s", edata->message ? edata->message : "unknown error")));
    FreeErrorData(edata);
    ok = false;
  }
  PG_END_TRY();
  pgstat_report_activity(STATE_IDLE, nullptr);
  return ok;
}

void record_failure(const char* view_filter, const char* message) {
  char* sql = psprintf(
      "INSERT INTO ivm.apply_stats AS s (viewid, failures, last_error, last_error_at) "
      "SELECT viewid, 1, $1, now() FROM ivm.views WHERE mode <> 'immediate' %s "
      "ON CONFLICT (viewid) DO UPDATE SET failures = s.failures + 1, last_error = EXCLUDED.last_error, "
      "last_error_at = EXCLUDED.last_error_at",
      view_filter);
  Datum arg = CStringGetTextDatum(message);
  Oid type = TEXTOID;
  run_in_transaction(sql, nullptr, &arg, &type, 1);
}

// apply_each: after a failed global apply, applies deferred views one by one.
void apply_each() {
  List* views = NIL;
  MemoryContext cxt = CurrentMemoryContext;
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  PushActiveSnapshot(GetTransactionSnapshot());
  if (SPI_connect() == SPI_OK_CONNECT) {
    if (SPI_execute("SELECT viewid::oid::text FROM ivm.views WHERE mode <> 'immediate' ORDER BY level, viewid", true,
                    0) == SPI_OK_SELECT) {
      MemoryContext old = MemoryContextSwitchTo(cxt);
      for (uint64 i = 0; i < SPI_processed; i++)
        views = lappend(views, pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1)));
      MemoryContextSwitchTo(old);
    }
    SPI_finish();
  }
  PopActiveSnapshot();
  CommitTransactionCommand();
  ListCell* lc;
  foreach (lc, views) {
    const char* oid = static_cast<const char*>(lfirst(lc));
    char* error = nullptr;
    char* sql = psprintf("SELECT ivm.apply_deltas(%s::oid::regclass::text)", oid);
    if (!run_in_transaction(sql, &error)) record_failure(psprintf("AND viewid = %s", oid), error);
  }
}

const char* const kForgetLeftovers =
    "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots "
    "WHERE slot_name = 'ivm_' || (SELECT oid FROM pg_catalog.pg_database WHERE datname = "
    "pg_catalog.current_database()) "
    "AND NOT active; "
    "SELECT pg_catalog.pg_replication_origin_drop(roname) FROM pg_catalog.pg_replication_origin "
    "WHERE roname = 'ivm_' || (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) "
    "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = roname)";

bool extension_installed() {
  bool found = false;
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  PushActiveSnapshot(GetTransactionSnapshot());
  if (SPI_connect() == SPI_OK_CONNECT) {
    found = SPI_execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'ivm'", true, 0) == SPI_OK_SELECT &&
            SPI_processed > 0;
    SPI_finish();
  }
  PopActiveSnapshot();
  CommitTransactionCommand();
  return found;
}

}  // namespace

void worker_init() {
  // A postmaster-level setting can only be defined while the postmaster
  // loads the library; loaded later, ivm has no worker and needs none.
  if (process_shared_preload_libraries_in_progress)
    DefineCustomStringVariable("ivm.databases", "Databases whose deferred views the ivm worker applies.",
                               "Comma-separated; needs shared_preload_libraries = 'ivm'.", &databases, "",
                               PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("ivm.apply_interval", "Time between two applies of deferred views.", nullptr,
                          &apply_interval_ms, 1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                          nullptr);
  MarkGUCPrefixReserved("ivm");
  if (!process_shared_preload_libraries_in_progress || !databases || !*databases) return;
  char* list = pstrdup(databases);
  List* names = NIL;
  if (!SplitIdentifierString(list, ',', &names))
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalid list syntax in ivm.databases")));
  ListCell* lc;
  foreach (lc, names) {
    BackgroundWorker w;
    memset(&w, 0, sizeof(w));
    w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w.bgw_start_time = BgWorkerStart_RecoveryFinished;
    w.bgw_restart_time = 5;
    snprintf(w.bgw_library_name, BGW_MAXLEN, "ivm");
    snprintf(w.bgw_function_name, BGW_MAXLEN, "ivm_worker_main");
    snprintf(w.bgw_name, BGW_MAXLEN, "ivm apply worker for %s", static_cast<char*>(lfirst(lc)));
    snprintf(w.bgw_type, BGW_MAXLEN, "ivm apply worker");
    strlcpy(w.bgw_extra, static_cast<char*>(lfirst(lc)), BGW_EXTRALEN);
    RegisterBackgroundWorker(&w);
  }
}

}  // namespace ivm::apply

void ivm_worker_main(Datum) {
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnection(MyBgworkerEntry->bgw_extra, nullptr, 0);
  pgstat_report_appname("ivm apply worker");
  // The worker runs as a superuser: its own statements never resolve names
  // through schemas other roles can create objects in.
  SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION);
  int backoff = 0;
  // Applies start every apply_interval (an apply that took longer is followed
  // at once by the next): waiting a whole interval after each apply would add
  // the apply's duration to the lag twice.
  TimestampTz started = GetCurrentTimestamp();
  for (;;) {
    long elapsed_ms = TimestampDifferenceMilliseconds(started, GetCurrentTimestamp());
    long wait_ms = std::max(0L, ivm::apply::apply_interval_ms + backoff - elapsed_ms);
    if (wait_ms > 0)
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    started = GetCurrentTimestamp();
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    if (!ivm::apply::extension_installed()) {
      // DROP EXTENSION drops the views in mode wal but cannot drop their
      // slot (not transactional), which would keep WAL forever: the slot and
      // origin ivm_<database oid> it left are dropped here.
      ivm::apply::run_in_transaction(ivm::apply::kForgetLeftovers, nullptr);
      continue;
    }
    char* error = nullptr;
    if (ivm::apply::run_in_transaction("SELECT ivm.apply_deltas()", &error)) {
      backoff = 0;
      continue;
    }
    // Find out which views fail: each is applied alone, failures are recorded.
    (void)error;
    ivm::apply::apply_each();
    backoff = backoff == 0 ? 1000 : std::min(backoff * 2, ivm::apply::kMaxBackoffMs);
  }
}

// progress.cpp: progress reports while ivm.create_view fills a view.
//
// Filling a view over a large table is one long statement.  Its inputs are
// read through ivm.progress_tick() (a filter that is always true), which
// counts the rows and raises a NOTICE every ivm.progress_rows of them; the
// client sees each as it comes.  Cancelling (statement_timeout,
// pg_cancel_backend) interrupts the statement like any other: the executor
// checks for interrupts on every row, and everything create_view did is
// transactional, so it all rolls back.  The counter is the only per-backend
// state and is reset both by its scope and at transaction abort.
#include "plan/ir.hpp"  // plan headers first: they refuse to follow postgres.h
#include "catalog/catalog.hpp"
#include "pg/guard.hpp"

extern "C" {
#include "nodes/supportnodes.h"
}

#include <climits>
#include <cstdio>

namespace {

int progress_rows = 1000000;  // ivm.progress_rows

// Plain data: the tick runs inside the executor, where an error longjmps
// away, so nothing in its path may own memory or have a destructor.
struct Progress {
  bool active;
  long long rows;  // input rows read so far
  long long next;  // report when rows reaches this
  bool reported;
  char view[2 * NAMEDATALEN + 8];
};
Progress progress = {false, 0, 0, false, ""};

}  // namespace

namespace ivm::catalog {

void progress_init() {
  DefineCustomIntVariable(
      "ivm.progress_rows", "Input rows read between two progress notices while ivm.create_view fills a view.",
      "0 turns progress notices off.", &progress_rows, 1000000, 0, INT_MAX, PGC_USERSET, 0, nullptr, nullptr, nullptr);
}

int progress_interval() { return progress_rows; }

PopulateProgress::PopulateProgress(const std::string& view) {
  progress.active = progress_rows > 0;
  progress.rows = 0;
  progress.next = progress_rows;
  progress.reported = false;
  snprintf(progress.view, sizeof(progress.view), "%s", view.c_str());
}

PopulateProgress::~PopulateProgress() { progress_reset(); }

void PopulateProgress::done(std::uint64_t view_rows) {
  if (!progress.reported) return;
  long long read = progress.rows;
  std::string view = progress.view;
  pg::pg_call([&] {
    ereport(NOTICE, (errmsg("incremental view %s populated: %lld input rows read, %llu rows", view.c_str(), read,
                            static_cast<unsigned long long>(view_rows))));
  });
}

void progress_reset() {
  progress.active = false;
  progress.reported = false;
}

}  // namespace ivm::catalog

extern "C" {
PG_FUNCTION_INFO_V1(ivm_progress_tick);
PG_FUNCTION_INFO_V1(ivm_progress_support);
}

// ivm_progress_tick: counts one input row of the view being populated.
// Called per row: C only, no C++ object, no allocation but the NOTICE's.
extern "C" Datum ivm_progress_tick(PG_FUNCTION_ARGS) {
  if (progress.active && ++progress.rows >= progress.next) {
    progress.next += progress_rows > 0 ? progress_rows : LLONG_MAX / 2;
    progress.reported = true;
    ereport(NOTICE, (errmsg("populating incremental view %s: %lld input rows read", progress.view, progress.rows)));
  }
  PG_RETURN_BOOL(true);
}

// ivm_progress_support: tells the planner the tick keeps every row, so the
// plan of the populating statement is the one it would be without it.
extern "C" Datum ivm_progress_support(PG_FUNCTION_ARGS) {
  Node* request = reinterpret_cast<Node*>(PG_GETARG_POINTER(0));
  if (IsA(request, SupportRequestSelectivity)) {
    reinterpret_cast<SupportRequestSelectivity*>(request)->selectivity = 1.0;
    PG_RETURN_POINTER(request);
  }
  if (IsA(request, SupportRequestCost)) {
    auto* cost = reinterpret_cast<SupportRequestCost*>(request);
    cost->startup = 0;
    cost->per_tuple = 0;
    PG_RETURN_POINTER(request);
  }
  PG_RETURN_POINTER(nullptr);
}

// sqlgen.hpp: the delta rules of each operator, rendered as SQL.
//
// Every relation the maintenance reads is a signed bag: rows with a
// multiplicity column __m (+n inserted, -n deleted).  A change to one leaf is
// propagated through the plan as follows (counting algorithm, Gupta, Mumick &
// Subrahmanian 1993; DBSP, Budiu et al. 2023):
//  - Filter and projection are linear: they map the bag row by row.
//  - Inner joins are bilinear: Δ(L⋈R) = ΔL⋈R_old + L_new⋈ΔR; with several
//    changed leaves the telescoping sum uses the new state of the leaves
//    before the changed one and the old state (new − Δ) of the leaves after it.
//  - Outer joins are not linear.  All their equality conditions share one key
//    class, so the output partitions by key: the rows of the affected keys are
//    recomputed from the restricted old and new inputs (Larson & Zhou 2007),
//    and rows whose key is NULL (which never match) pass through linearly.
//  - Aggregates keep per-group state; algebraic aggregates add deltas,
//    MIN/MAX recompute only groups that lost their extreme value.
#pragma once
#include "plan/ir.hpp"
#include "plan/pure.hpp"

#include <map>
#include <string>
#include <vector>

namespace ivm::plan {

// DeltaSource: where the change of one leaf can be read.  Base tables give
// transition tables (inserted/deleted rows); views give a signed bag.
struct DeltaSource {
  std::string inserted;  // relation of inserted rows, or ""
  std::string deleted;   // relation of deleted rows, or ""
  std::string bag;       // relation with the leaf's columns plus __m, or ""
  // The bag holds no two rows equal on these columns and no __m of 0 (a
  // deferred view's consumed delta table), or nothing is known (empty).  A
  // leaf reading exactly these columns reads the bag as it is.
  std::vector<std::string> consolidated_on;
};

// Changes: the changed leaves of one view (leaf index -> its delta).
using Changes = std::map<int, DeltaSource>;

// Names the maintenance uses for the ephemeral relations it registers.
inline const char* kGroupsRelation = "ivm_groups";
inline const char* kDeltasRelation = "ivm_agg_deltas";

// Tables whose rows maintenance updates in place (aggregate state, views of
// aggregates, views with a locator) leave room on each page, so that an
// update can put the new row version beside the old one (a HOT update: no new
// index entries, the old version pruned on a later visit).  Full pages make
// nearly every update of a large view move the row to another page and add
// an entry to each of its indexes.  Measured on the Customer-360 views at 1M
// customers (deferred apply of ~20k transactions): 0.49 -> 0.40 ms per
// transaction.
inline constexpr int kFillfactor = 85;

// storage_options: " WITH (...)" for the view table, or "".
std::string storage_options(const ViewPlan& p);
// sql_create_storage: the state and key-lock tables; sql_create_indexes: the
// indexes maintenance probes (state by group, view by group or locator),
// built once the tables are filled: one sorted build instead of an insertion
// per row, and the build records the tables' sizes for the planner.
std::vector<std::string> sql_create_storage(const ViewPlan& p);
std::vector<std::string> sql_create_indexes(const ViewPlan& p);
// Populate: how a view is filled from scratch.  Each row of `rows` gives, in
// order, the group's state row (aggregate views: `state_columns` columns, the
// state table's own in its order and types), then the view's row
// (`view_columns`), then, for aggregate views (state_columns > 0), whether
// the group has a row in the view at all (the view's columns are NULL where
// it has not).  `statements` does the same as INSERT statements.
struct Populate {
  std::string rows;
  std::size_t state_columns = 0;
  std::size_t view_columns = 0;
  std::vector<std::string> statements;
};
Populate sql_populate(const ViewPlan& p);
std::vector<std::string> sql_clear(const ViewPlan& p);

// Maintenance steps, in order.  sql_lock_keys returns "" when the view needs
// no key lock (a single leaf).
std::string sql_lock_keys(const ViewPlan& p, const Changes& c);
// exclusive: no one else maintains the view meanwhile (a deferred view's
// applier); removals then need no row locks.
std::string sql_spj_apply(const ViewPlan& p, const Changes& c, bool exclusive);
// Writing a view by key (apply/keyed.hpp): the view's rows are named by the
// values of keyed_columns(p) (output column indexes; empty: the view has no
// such key, and is written by SQL statements only), one row per key.
std::vector<int> keyed_columns(const ViewPlan& p);
// key_column: the column of leaf l that holds its join key when the key is
// that plain column (l2.customer_id, l2."Key"), unquoted; "" otherwise.
std::string key_column(const Leaf& l);
// sql_spj_rows: for a view without aggregates that has such a key, what its
// rows of the changed keys become, as rows of __live (the key has a row now),
// c<i> (that row; when not live, at least the key columns), and __m for
// views whose delta carries it: a read-only statement.  "" when the view
// cannot be written this way.
std::string sql_spj_rows(const ViewPlan& p, const Changes& c);
std::string sql_agg_upsert(const ViewPlan& p, const Changes& c);
// sql_agg_upsert_rows: the upsert, returning for each group it changed the
// finalized group (g<i>, a<i>, __cnt, __dirty), whether the group has a view
// row now (__live), and that row (c<i>, NULL but for the group columns when
// not live).  The view is then written row by row (apply/keyed.hpp), or by
// sql_agg_apply reading the state again.
std::string sql_agg_upsert_rows(const ViewPlan& p, const Changes& c);
// Merging the state below SQL (apply/merge.hpp): state_mergeable(p) says
// whether the upsert's ON CONFLICT branch and the finalization can be done
// row by row in C: a grouped view of algebraic aggregates and MIN/MAX with
// counted extremes, no HAVING, every output column a group or an aggregate
// as it is.  sql_agg_deltas then gives, read-only, each changed group's
// delta as the upsert would insert it: one row per group, sorted by group
// (the order the upsert locks them in), columns named as the state table's.
bool state_mergeable(const ViewPlan& p);
// merged_columns: per output column, what the merge writes in it: group j
// as -1 - j, aggregate i as i; empty when the view is not state_mergeable.
std::vector<int> merged_columns(const ViewPlan& p);
std::string sql_agg_deltas(const ViewPlan& p, const Changes& c);
// Folding the deltas below SQL (apply/fold.hpp): sql_agg_delta_rows reads
// the change as rows, one per changed input row, sorted by group (the order
// of sql_agg_deltas): the group g<j>, per aggregate i its argument v<i> (for
// SUM and AVG cast to the state's type; absent for count(*)) and its FILTER
// f<i> (absent without one), then __m.  "" unless the view is foldable:
// state_mergeable, every SUM and AVG kept as bigint or numeric.
// agg_delta_items: the columns of sql_agg_delta_rows but __m, as (name,
// expression over the leaves), in its order; empty unless the view is foldable.
std::vector<std::pair<std::string, std::string>> agg_delta_items(const ViewPlan& p);
bool foldable(const ViewPlan& p);
std::string sql_agg_delta_rows(const ViewPlan& p, const Changes& c);
// sql_agg_upsert_rows_from_deltas: sql_agg_upsert_rows reading the deltas
// sql_agg_deltas gave (registered as kDeltasRelation) instead of computing
// them again: where the merge steps aside for a group without its row.
std::string sql_agg_upsert_rows_from_deltas(const ViewPlan& p, const Changes& c);
// sql_agg_gc: deletes the state rows of groups the upsert emptied (__cnt = 0
// among the groups registered as kGroupsRelation).
std::string sql_agg_gc(const ViewPlan& p);
std::string sql_agg_recompute(const ViewPlan& p);
// sql_agg_apply reads the state rows the upsert returned (as kGroupsRelation);
// reread_state: groups were recomputed since, read them from the state table.
// AggApplyCase: what those groups hold, known once the upsert returned them.
// Each part of the statement that a case cannot need is left out: the
// executor sets up every node of a plan, run or not, and for the one-row
// changes of OLTP writes that setup costs as much as the run (perf: 18 % of
// a backend's time in ExecutorStart, 17 % in ExecutorRun, with two summary
// views in ivm.immediate_apply = 'transaction').
struct AggApplyCase {
  bool null_keys = true;  // some group key is NULL: its view row needs a NULL-safe probe
  bool emptied = true;    // some group lost its last row (count <= 0): its view and state rows go
};
std::string sql_agg_apply(const ViewPlan& p, bool reread_state, AggApplyCase groups = {});

// Building blocks, exposed for tests and for ivm.explain.
std::string sql_leaf_delta(const ViewPlan& p, int leaf, const DeltaSource& d);
std::string sql_body_delta(const ViewPlan& p, const Changes& c, const std::vector<std::string>& exprs);
std::string sql_body_rows(const ViewPlan& p, const std::vector<std::string>& exprs);
std::string explain(const ViewPlan& p);
// sql_grouped_query: SELECT <groups> AS g<i>, <calls> AS a<i> FROM <body>
// GROUP BY <groups>: the aggregate part of a view whose select list omits a
// grouping expression, compiled into an internal view of its own.
std::string sql_grouped_query(const ViewPlan& p, const std::vector<std::string>& calls);

}  // namespace ivm::plan

// maintain.cpp: runs each view's delta steps in dependency order.
#include "apply/maintain.hpp"
#include "apply/fold.hpp"
#include "apply/load.hpp"
#include "apply/keyed.hpp"
#include "apply/merge.hpp"
#include "apply/computed.hpp"
#include "apply/wal.hpp"
#include "catalog/catalog.hpp"
#include "plan/sqlgen.hpp"
#include "pg/spi.hpp"

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

namespace ivm::apply {

namespace {

// The SQL of a view's steps for one shape of change, generated once per
// backend: the text is long and the same for every statement of that shape.
struct Steps {
  std::string lock, spj, upsert, recompute;
  // The upsert returning each group's view row, for writing the view by key
  // (keyed.hpp), and the state's clean-up after it.
  std::string upsert_rows, gc;
  // The per-group deltas, for merging the state by key (merge.hpp), and the
  // upsert reading them when the merge steps aside; the change's rows the
  // deltas are summed from below SQL (fold.hpp), when the view allows.
  std::string deltas, upsert_deltas, delta_rows;
  // What the view's rows of the changed keys become, read-only, for writing
  // a view without aggregates by key.
  std::string spj_rows;
  // apply[dirty][null_keys][emptied]: the view's update for each case of the
  // groups the upsert returned (plan::AggApplyCase).
  std::string apply[2][2][2];
};

const Steps& steps(const plan::ViewPlan& p, const plan::Changes& c, bool exclusive) {
  static std::unordered_map<std::string, Steps> cache;
  static std::uint64_t generation = 0;
  if (generation != catalog::catalog_generation()) {
    cache.clear();
    generation = catalog::catalog_generation();
  }
  std::string key = std::to_string(p.oid) + (exclusive ? "x" : "s");
  for (const auto& [leaf, d] : c) {
    key += "|" + std::to_string(leaf) + ":" + d.inserted + ":" + d.deleted + ":" + d.bag;
    for (const std::string& col : d.consolidated_on) key += ":" + col;
  }
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  Steps s;
  if (!exclusive) s.lock = plan::sql_lock_keys(p, c);
  if (!p.aggregate) {
    s.spj = plan::sql_spj_apply(p, c, exclusive);
    s.spj_rows = plan::sql_spj_rows(p, c);
  } else {
    s.upsert = plan::sql_agg_upsert(p, c);
    if (!p.global()) {
      s.upsert_rows = plan::sql_agg_upsert_rows(p, c);
      s.gc = plan::sql_agg_gc(p);
      if (plan::state_mergeable(p)) {
        s.deltas = plan::sql_agg_deltas(p, c);
        s.upsert_deltas = plan::sql_agg_upsert_rows_from_deltas(p, c);
        s.delta_rows = plan::sql_agg_delta_rows(p, c);
      }
    }
    if (p.needs_recompute()) s.recompute = plan::sql_agg_recompute(p);
    for (int dirty = 0; dirty < 2; ++dirty)
      for (int nulls = 0; nulls < 2; ++nulls)
        for (int emptied = 0; emptied < 2; ++emptied)
          s.apply[dirty][nulls][emptied] = plan::sql_agg_apply(p, dirty, {nulls == 1, emptied == 1});
  }
  return cache.emplace(std::move(key), std::move(s)).first->second;
}

// How often each path was taken in this backend (maintenance_paths).
std::array<std::uint64_t, kPaths> path_counts{};

// computed: the rows computed below SQL (computed.hpp) when there are, else
// those of `statement`.
pg::Tuples computed(pg::Spi& spi, std::optional<pg::Tuples> below, const std::string& statement) {
  took(below ? Path::RowsComputedBelowSql : Path::RowsComputedByStatement);
  if (below) return *below;
  spi.exec(statement);
  return spi.result();
}

// apply_one: maintains one view for the changes of its leaves, and returns
// the size of the view's own change (rows + __m), registered as relation
// `change` unless that is "".
// exclusive: no one else maintains the view meanwhile (a deferred view during
// an apply, which holds the appliers' lock), so writers need no key locks.
std::uint64_t apply_one(pg::Spi& spi, const plan::ViewPlan& p, const plan::Changes& c, bool exclusive,
                        const std::string& change) {
  AsViewOwner owner(p);
  const Steps& s = steps(p, c, exclusive);
  auto result = [&](std::uint64_t n) {
    if (n > 0 && !change.empty()) spi.capture(change);
    return n;
  };
  bool keyed = keyed_possible();
  if (!s.lock.empty()) {
    bool direct = keyed && lock_keys(spi, p, c);
    if (!direct) spi.exec(s.lock);
    took(direct ? Path::KeysLockedDirectly : Path::KeysLockedByStatement);
  }
  if (!p.aggregate) {
    if (!s.spj_rows.empty() && keyed) {
      pg::Tuples rows = computed(spi, spj_rows(spi, p, c), s.spj_rows);
      if (rows.n == 0) return 0;
      if (std::optional<std::uint64_t> n = apply_keyed(spi, p, change, rows)) {
        took(Path::ViewWrittenByKey);
        return *n;
      }
    }
    took(Path::ViewWrittenByStatement);
    return result(spi.exec(s.spj));
  }
  // The view written by key when it can be; the upsert's rows then carry the
  // finalized groups, so the SQL apply (if it must run) reads the state again.
  keyed = keyed && !s.upsert_rows.empty();
  // The state merged by key when every group has its row (merge.hpp).
  const std::string* upsert = keyed ? &s.upsert_rows : &s.upsert;
  if (keyed && !s.deltas.empty()) {
    std::optional<pg::Tuples> d;
    if (!s.delta_rows.empty()) {
      pg::Tuples rows = computed(spi, agg_delta_rows(spi, p, c), s.delta_rows);
      if (rows.n == 0) return 0;
      d = fold_deltas(spi, p, rows);
    }
    took(d ? Path::DeltasSummedBelowSql : Path::DeltasSummedByStatement);
    if (!d) {
      if (spi.exec(s.deltas) == 0) return 0;
      d = spi.result();
    }
    if (std::optional<Merged> m = merge_state(spi, p, *d)) {
      took(Path::StateMergedByGroup);
      if (m->emptied || m->dirty) spi.keep_rows(plan::kGroupsRelation, *m);
      if (!m->dirty) {
        if (std::optional<std::uint64_t> n = apply_keyed(spi, p, change, *m)) {
          took(Path::ViewWrittenByKey);
          if (m->emptied) spi.exec(s.gc);
          return *n;
        }
        if (!m->emptied) spi.keep_rows(plan::kGroupsRelation, *m);
      }
      took(Path::ViewWrittenByStatement);
      if (m->dirty) spi.exec(s.recompute);
      return result(spi.exec(s.apply[1][m->nulls][m->emptied]));
    }
    // A group without its state row: the upsert inserts it, from the deltas
    // just computed (the merge wrote nothing).
    spi.keep_rows(plan::kDeltasRelation, *d);
    upsert = &s.upsert_deltas;
  }
  if (spi.exec(*upsert) == 0) return 0;
  took(Path::StateUpsertedByStatement);
  // What the returned groups need (plan::AggApplyCase); the recomputation
  // below changes aggregate values only, never a group's key or row count.
  bool dirty = false, nulls = false, emptied = false;
  int dirty_col = spi.column("__dirty"), count_col = spi.column("__cnt");
  std::vector<int> key_cols;
  for (std::size_t g = 0; g < p.groups.size(); ++g) key_cols.push_back(spi.column(("g" + std::to_string(g)).c_str()));
  for (uint64 i = 0; i < spi.rows() && !(dirty && nulls && emptied); ++i) {
    dirty = dirty || spi.boolean(i, dirty_col);
    emptied = emptied || spi.int8(i, count_col) <= 0;
    for (int k : key_cols) nulls = nulls || spi.is_null(i, k);
  }
  // A dirty group needs the SQL steps: its aggregates are not known yet.
  if (keyed && !dirty) {
    if (emptied) spi.capture(plan::kGroupsRelation);
    if (std::optional<std::uint64_t> n = apply_keyed(spi, p, change)) {
      took(Path::ViewWrittenByKey);
      if (emptied) spi.exec(s.gc);
      return *n;
    }
    if (!emptied) spi.capture(plan::kGroupsRelation);
  } else {
    spi.capture(plan::kGroupsRelation);
  }
  // Groups that lost their MIN/MAX (or hold a non-algebraic aggregate) are
  // recomputed in a statement of their own: it runs after the group locks
  // were taken, so under READ COMMITTED it sees what committed meanwhile.
  took(Path::ViewWrittenByStatement);
  if (dirty) spi.exec(s.recompute);
  return result(spi.exec(s.apply[dirty || keyed][nulls][emptied]));
}

}  // namespace

namespace {

// record_rows: appends the rows of `from`, with multiplicity m ("1", "-1" or
// "__m"), to the delta table of relation, if deferred views read it.
void record_rows(pg::Spi& spi, std::uint32_t relation, const std::string& from, const std::string& m) {
  const catalog::DeltaTable* dt = catalog::delta_table(spi, relation);
  if (!dt) return;
  // A change held in memory goes straight into the heap.
  if (catalog::append_change(spi, *dt, from, m)) return;
  // Delta tables are ivm's own: nobody else may write or read them.
  catalog::AsCatalogOwner owner;
  std::string cols;
  for (const auto& c : dt->columns) cols += c + ", ";
  spi.exec("INSERT INTO " + dt->name + " (" + cols + "__m) SELECT " + cols + m + " FROM " + from);
}

// record: appends a relation's change to its delta table.  Not for a
// WAL-captured one: its delta table is filled from WAL (wal.cpp).
void record(pg::Spi& spi, std::uint32_t relation, const plan::DeltaSource& d) {
  const catalog::DeltaTable* dt = catalog::delta_table(spi, relation);
  if (!dt || dt->from_wal) return;
  if (!d.inserted.empty()) record_rows(spi, relation, d.inserted, "1");
  if (!d.deleted.empty()) record_rows(spi, relation, d.deleted, "-1");
  if (!d.bag.empty()) record_rows(spi, relation, d.bag, "__m");
}

}  // namespace

LargeBatch::LargeBatch(pg::Spi& spi, std::uint64_t rows) : spi_(spi) {
  if (rows <= kLargeBatch) return;
  no_jit_.emplace("jit", "off");
  memory_.emplace("work_mem", "64MB");
  spi_.fresh_plans(true);
}

LargeBatch::~LargeBatch() { spi_.fresh_plans(false); }

std::uint64_t path_count(Path p) { return path_counts[static_cast<std::size_t>(p)]; }
void took(Path p) { ++path_counts[static_cast<std::size_t>(p)]; }

std::uint64_t propagate(pg::Spi& spi, const Changed& changes, Phase phase) {
  std::vector<catalog::Dependent> views;
  for (const auto& [base, source] : changes) {
    (void)source;
    for (auto& v : catalog::dependents(spi, base)) {
      bool seen = false;
      for (const auto& w : views) seen = seen || w.oid == v.oid;
      if (!seen) views.push_back(std::move(v));
    }
  }
  if (phase == Phase::Write)
    for (const auto& [base, source] : changes) record(spi, base, source);
  if (views.empty()) return 0;
  if (changes.size() > 1)
    std::stable_sort(views.begin(), views.end(),
                     [](const catalog::Dependent& a, const catalog::Dependent& b) { return a.level < b.level; });
  std::set<std::uint32_t> read_by_views;
  for (const auto& v : views)
    for (const auto& l : v.plan.leaves)
      if (l.is_view) read_by_views.insert(l.relid);
  Changed changed = changes;
  std::uint64_t total = 0;
  for (const auto& v : views) {
    if (phase == Phase::Write && v.deferred) continue;
    plan::Changes c;
    for (std::size_t i = 0; i < v.plan.leaves.size(); ++i) {
      std::uint32_t relid = v.plan.leaves[i].relid;
      auto it = changed.find(relid);
      if (it == changed.end()) continue;
      // Consumed deltas are news only to deferred views.
      if (phase == Phase::Apply && !v.deferred && changes.count(relid)) continue;
      c[static_cast<int>(i)] = it->second;
    }
    if (c.empty()) continue;
    // An immediate view downstream of an apply is maintained like a writer
    // maintains it: its key locks first, then statements that see what
    // committed meanwhile.  Under the apply's one snapshot it would miss the
    // change of a writer of its other inputs who committed after that
    // snapshot but maintained the view before this apply changed its input.
    std::optional<pg::SnapshotPause> fresh;
    if (phase == Phase::Apply && !v.deferred) fresh.emplace(spi);
    bool wanted = read_by_views.count(v.oid) || (phase == Phase::Write && catalog::delta_table(spi, v.oid));
    std::string name = wanted ? "ivm_delta_" + std::to_string(v.oid) : std::string();
    std::uint64_t n = apply_one(spi, v.plan, c, phase == Phase::Apply && v.deferred, name);
    total += n;
    if (n > 0 && wanted) {
      changed[v.oid] = plan::DeltaSource{"", "", name, {}};
      if (phase == Phase::Write) record(spi, v.oid, changed[v.oid]);
    }
  }
  return total;
}

void record_truncate(pg::Spi& spi, std::uint32_t relation) {
  std::string rel = pg::pg_call([&] {
    return std::string(
        quote_qualified_identifier(get_namespace_name(get_rel_namespace(relation)), get_rel_name(relation)));
  });
  record_rows(spi, relation, rel, "-1");
}

std::uint64_t apply_deltas(pg::Spi& spi, std::uint32_t view) {
  pg::PinnedSearchPath pinned;
  return apply_relations(spi, catalog::delta_relations(spi, view));
}

std::uint64_t apply_relations(pg::Spi& spi, const std::vector<std::uint32_t>& relations) {
  pg::PinnedSearchPath pinned;
  // One applier at a time: a second one waits, then finds the deltas the
  // first consumed gone.
  spi.exec_once("SELECT pg_catalog.pg_advisory_xact_lock(" + std::to_string(kApplyLockKey) + ")");
  // One snapshot for the whole apply: the deltas consumed and the base
  // tables read must describe the same moment, or a change committed in
  // between would be joined twice.
  pg::SnapshotScope snapshot(spi);
  // Changes of WAL-captured tables that the snapshot sees join the delta tables.
  wal::catch_up(spi, relations);
  Changed changed;
  std::uint64_t consumed = 0;
  for (std::uint32_t r : catalog::delta_closure(spi, relations)) {
    const catalog::DeltaTable* dt = catalog::delta_table(spi, r);
    if (!dt) continue;
    std::string cols;
    for (const auto& c : dt->columns) cols += (cols.empty() ? "" : ", ") + c;
    // Consolidated: a row inserted then deleted cancels, many updates of a
    // row become one net change.
    std::string sql = "WITH c AS (DELETE FROM " + dt->name + " RETURNING *) SELECT " + cols +
                      (cols.empty() ? "" : ", ") + "sum(__m)::int8 AS __m FROM c" +
                      (cols.empty() ? "" : " GROUP BY " + cols) + " HAVING sum(__m) <> 0";
    std::uint64_t n = 0;
    {
      catalog::AsCatalogOwner owner;  // the delta tables are ivm's own
      n = spi.exec(sql);
    }
    if (n == 0) continue;
    consumed += n;
    // The name carries the column set: a cached plan reading it must never
    // meet a relation of another shape under the same name.
    std::string name =
        "ivm_consumed_" + std::to_string(r) + "_" + std::to_string(std::hash<std::string>{}(cols) % 1000000);
    spi.capture(name);
    changed[r] = plan::DeltaSource{"", "", name, dt->columns};
  }
  if (changed.empty()) return 0;
  LargeBatch settings(spi, consumed);
  return propagate(spi, changed, Phase::Apply);
}

namespace {

// rebuild: recomputes one view from scratch.  Deferred views reading it get
// the difference through its delta table (old rows out, new rows in).
void rebuild(pg::Spi& spi, std::uint32_t oid, const plan::ViewPlan& p) {
  record_rows(spi, oid, p.name, "-1");
  {
    AsViewOwner owner(p);
    for (const auto& sql : plan::sql_clear(p)) spi.exec_once(sql);
    populate(spi, p);
  }
  record_rows(spi, oid, p.name, "1");
}

}  // namespace

std::uint64_t refresh(pg::Spi& spi, std::uint32_t view) {
  pg::PinnedSearchPath pinned;
  // No writer may slip between the rebuild and the deltas still pending.
  catalog::lock_base_tables(spi, view);
  if (catalog::view_mode(spi, view) != "immediate") apply_deltas(spi, view);
  plan::ViewPlan p = catalog::load_plan(spi, view);
  rebuild(spi, view, p);
  std::uint64_t rows = 0;
  spi.exec_once("SELECT count(*) FROM " + p.name);
  rows = std::stoull(spi.text(0, 1));
  refresh_dependents(spi, view);
  return rows;
}

void refresh_dependents(pg::Spi& spi, std::uint32_t relation) {
  pg::PinnedSearchPath pinned;
  for (const auto& v : catalog::dependents(spi, relation)) {
    // Deferred views catch up through their delta tables (record_truncate).
    if (v.deferred) continue;
    // A rebuilt view that deferred (or wal) views read hands them its old
    // and new rows: no concurrent writer may change it in between, or its
    // change would be in the new rows and in its own delta too.
    if (catalog::delta_table(spi, v.oid)) catalog::lock_base_tables(spi, v.oid);
    rebuild(spi, v.oid, v.plan);
  }
}

std::uint64_t verify(pg::Spi& spi, std::uint32_t view) {
  pg::PinnedSearchPath pinned;
  plan::ViewPlan p = catalog::load_plan(spi, view);
  std::string def = catalog::definition(spi, view);
  // The query is the owner's: it is evaluated with the owner's rights, as
  // the view's maintenance is.
  pg::AsRole owner(pg::relation_owner(view));
  spi.exec_once("SELECT count(*) FROM ((TABLE " + p.name + " EXCEPT ALL (" + def + ")) UNION ALL ((" + def +
                ") EXCEPT ALL TABLE " + p.name + ")) ivm_diff");
  return std::stoull(spi.text(0, 1));
}

}  // namespace ivm::apply

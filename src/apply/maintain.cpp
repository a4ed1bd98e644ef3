// maintain.cpp: runs each view's delta steps in dependency order.
#include "apply/maintain.hpp"
#include "catalog/catalog.hpp"
#include "plan/sqlgen.hpp"
#include "pg/spi.hpp"

#include <algorithm>
#include <map>
#include <set>

namespace ivm::apply {

namespace {
int maintenance_depth = 0;
}

MaintenanceScope::MaintenanceScope() { ++maintenance_depth; }
MaintenanceScope::~MaintenanceScope() {
  if (maintenance_depth > 0) --maintenance_depth;
}
bool MaintenanceScope::active() { return maintenance_depth > 0; }
void MaintenanceScope::reset() { maintenance_depth = 0; }

namespace {

// apply_one: maintains one view for the changes of its leaves.  Leaves the
// view's own change (rows + __m) as the last SPI result; returns its size.
std::uint64_t apply_one(pg::Spi& spi, const plan::ViewPlan& p, const plan::Changes& c) {
  std::string lock = plan::sql_lock_keys(p, c);
  if (!lock.empty()) spi.exec(lock);
  if (!p.aggregate) return spi.exec(plan::sql_spj_apply(p, c));
  if (spi.exec(plan::sql_agg_upsert(p, c)) == 0) return 0;
  bool dirty = false;
  int dirty_col = spi.column("__dirty");
  for (uint64 i = 0; i < spi.rows() && !dirty; ++i) dirty = spi.boolean(i, dirty_col);
  spi.capture(plan::kGroupsRelation);
  // Groups that lost their MIN/MAX (or hold a non-algebraic aggregate) are
  // recomputed in a statement of their own: it runs after the group locks
  // were taken, so under READ COMMITTED it sees what committed meanwhile.
  if (dirty) spi.exec(plan::sql_agg_recompute(p));
  return spi.exec(plan::sql_agg_apply(p));
}

}  // namespace

void propagate(pg::Spi& spi, const Changed& changes) {
  std::vector<catalog::Dependent> views;
  for (const auto& [base, source] : changes) {
    (void)source;
    for (auto& v : catalog::dependents(spi, base)) {
      bool seen = false;
      for (const auto& w : views) seen = seen || w.oid == v.oid;
      if (!seen) views.push_back(std::move(v));
    }
  }
  if (views.empty()) return;
  if (changes.size() > 1)
    std::stable_sort(views.begin(), views.end(),
                     [](const catalog::Dependent& a, const catalog::Dependent& b) { return a.level < b.level; });
  std::set<std::uint32_t> read_by_views;
  for (const auto& v : views)
    for (const auto& l : v.plan.leaves)
      if (l.is_view) read_by_views.insert(l.relid);
  Changed changed = changes;
  MaintenanceScope scope;
  for (const auto& v : views) {
    plan::Changes c;
    for (std::size_t i = 0; i < v.plan.leaves.size(); ++i) {
      auto it = changed.find(v.plan.leaves[i].relid);
      if (it != changed.end()) c[static_cast<int>(i)] = it->second;
    }
    if (c.empty()) continue;
    std::uint64_t n = apply_one(spi, v.plan, c);
    if (n > 0 && read_by_views.count(v.oid)) {
      std::string name = "ivm_delta_" + std::to_string(v.oid);
      spi.capture(name);
      changed[v.oid] = plan::DeltaSource{"", "", name};
    }
  }
}

std::uint64_t refresh(pg::Spi& spi, std::uint32_t view) {
  MaintenanceScope scope;
  pg::PinnedSearchPath pinned;
  plan::ViewPlan p = catalog::load_plan(spi, view);
  for (const auto& sql : plan::sql_clear(p)) spi.exec_once(sql);
  for (const auto& sql : plan::sql_populate(p)) spi.exec_once(sql);
  std::uint64_t rows = 0;
  spi.exec_once("SELECT count(*) FROM " + p.name);
  rows = std::stoull(spi.text(0, 1));
  refresh_dependents(spi, view);
  return rows;
}

void refresh_dependents(pg::Spi& spi, std::uint32_t relation) {
  MaintenanceScope scope;
  pg::PinnedSearchPath pinned;
  for (const auto& v : catalog::dependents(spi, relation)) {
    for (const auto& sql : plan::sql_clear(v.plan)) spi.exec_once(sql);
    for (const auto& sql : plan::sql_populate(v.plan)) spi.exec_once(sql);
  }
}

std::uint64_t verify(pg::Spi& spi, std::uint32_t view) {
  pg::PinnedSearchPath pinned;
  plan::ViewPlan p = catalog::load_plan(spi, view);
  std::string def = catalog::definition(spi, view);
  spi.exec_once("SELECT count(*) FROM ((TABLE " + p.name + " EXCEPT ALL (" + def + ")) UNION ALL ((" + def +
                ") EXCEPT ALL TABLE " + p.name + ")) ivm_diff");
  return std::stoull(spi.text(0, 1));
}

}  // namespace ivm::apply

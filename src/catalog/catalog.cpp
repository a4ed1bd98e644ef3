// catalog.cpp: creating, finding and dropping ivm views.
#include "catalog/catalog.hpp"
#include "analyze/analyze.hpp"
#include "apply/load.hpp"
#include "apply/maintain.hpp"
#include "plan/sqlgen.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "utils/acl.h"
#include "utils/rls.h"
#include "catalog/dependency.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
}

#include <algorithm>
#include <map>
#include <optional>
#include <set>

namespace ivm::catalog {

using pg::Error;
using pg::pg_call;
using pg::quote_literal;

namespace {

std::string oid_text(std::uint32_t oid) { return std::to_string(oid); }

struct CachedPlan {
  std::string version;  // xmin of the catalog row
  plan::ViewPlan plan;
};

std::map<std::uint32_t, CachedPlan>& plan_cache() {
  static std::map<std::uint32_t, CachedPlan> cache;
  return cache;
}

// The views depending on each base relation, per backend.  Every change to
// ivm's catalog sends a relcache invalidation for ivm.views (see
// invalidate()), which empties this cache in every backend at commit, so the
// trigger path needs no catalog query in the steady state.
std::map<std::uint32_t, std::vector<Dependent>>& dependents_cache() {
  static std::map<std::uint32_t, std::vector<Dependent>> cache;
  return cache;
}
std::map<std::uint32_t, CaptureRoute>& route_cache() {
  static std::map<std::uint32_t, CaptureRoute> cache;
  return cache;
}
// The tables of all views, when known (see view_tables()).
std::optional<std::set<std::uint32_t>>& view_table_cache() {
  static std::optional<std::set<std::uint32_t>> cache;
  return cache;
}
std::map<std::uint32_t, std::optional<DeltaTable>>& delta_cache() {
  static std::map<std::uint32_t, std::optional<DeltaTable>> cache;
  return cache;
}
Oid views_relid = InvalidOid;
bool views_recheck = false;
bool callback_registered = false;
std::uint64_t generation = 0;

void on_relcache(Datum, Oid relid) {
  if (relid == InvalidOid || relid == views_relid) {
    ++generation;
    // Found again on next use: the extension may have been dropped and created anew.
    views_relid = InvalidOid;
    dependents_cache().clear();
    delta_cache().clear();
    route_cache().clear();
    view_table_cache().reset();
    plan_cache().clear();
    // ivm.views itself may be gone (DROP EXTENSION, here or in another
    // session) and come back with a new oid: looked up again on next use,
    // the old oid matching invalidations until then.
    views_recheck = true;
  }
}

void watch_catalog() {
  if (callback_registered && OidIsValid(views_relid) && !views_recheck) return;
  views_recheck = false;
  pg::pg_call([] {
    views_relid = get_relname_relid("views", get_namespace_oid("ivm", false));
    if (!callback_registered) CacheRegisterRelcacheCallback(on_relcache, (Datum)0);
  });
  callback_registered = true;
}

// invalidate: tells every backend (and this one) that ivm's catalog changed.
void invalidate() {
  watch_catalog();
  pg::pg_call([] { CacheInvalidateRelcacheByRelid(views_relid); });
  ++generation;
  dependents_cache().clear();
  delta_cache().clear();
  route_cache().clear();
  view_table_cache().reset();
}

std::string relation_name(std::uint32_t relid) {
  std::string name = pg_call([&] {
    char* rel = get_rel_name(relid);
    char* nsp = rel ? get_namespace_name(get_rel_namespace(relid)) : nullptr;
    return rel && nsp ? std::string(quote_qualified_identifier(nsp, rel)) : std::string();
  });
  if (name.empty())
    throw Error(ERRCODE_UNDEFINED_TABLE, "relation with oid " + std::to_string(relid) + " does not exist");
  return name;
}

// fresh_name: "ivm_state.<stem>" for a new internal relation, or, when that
// name is taken (by a relation restored from a dump of another database, whose
// oids differed), the stem with a unique suffix.  Run as the catalog owner.
std::string fresh_name(pg::Spi& spi, const std::string& stem) {
  bool taken =
      pg_call([&] { return OidIsValid(get_relname_relid(stem.c_str(), get_namespace_oid("ivm_state", false))); });
  if (!taken) return "ivm_state." + stem;
  spi.exec_once("SELECT pg_catalog.nextval('ivm.internal_seq')");
  return "ivm_state." + stem + "_" + spi.text(0, 1);
}

std::string modes_check(const std::string& mode) {
  if (mode == "immediate" || mode == "deferred" || mode == "wal") return mode;
  throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "invalid mode \"" + mode + "\"", "",
              "Valid modes are 'immediate', 'deferred' and 'wal'.");
}

// needed_columns: the columns of relid a view reads.
std::vector<std::string> needed_columns(const plan::ViewPlan& p, std::uint32_t relid) {
  std::vector<std::string> cols;
  for (const auto& l : p.leaves)
    if (l.relid == relid)
      for (const auto& c : l.columns)
        if (std::find(cols.begin(), cols.end(), c) == cols.end()) cols.push_back(c);
  return cols;
}

// ensure_delta_table: makes relid's delta table hold at least the columns a
// deferred view needs.  A delta table holds only columns deferred views read
// (so that dropping any other column of the table just works), the change's
// multiplicity and when it was captured.  When it must grow, its pending
// changes are applied first and it is created anew.
void ensure_delta_table(pg::Spi& spi, std::uint32_t relid, const std::vector<std::string>& needed) {
  AsCatalogOwner owner;
  const DeltaTable* existing = delta_table(spi, relid);
  std::vector<std::string> cols = existing ? existing->columns : std::vector<std::string>{};
  bool grows = !existing;
  for (const auto& c : needed)
    if (std::find(cols.begin(), cols.end(), c) == cols.end()) {
      cols.push_back(c);
      grows = true;
    }
  if (!grows) return;
  if (existing) {
    std::string old = existing->name;
    apply::apply_relations(spi, {relid});
    spi.exec_once("DROP TABLE " + old);
    spi.exec_once("DELETE FROM ivm.delta_tables WHERE relid = " + oid_text(relid));
  }
  std::string arr;
  for (const auto& c : cols) arr += (arr.empty() ? "" : ", ") + quote_literal(c);
  spi.exec_once(
      "SELECT pg_catalog.quote_ident(a.attname), pg_catalog.format_type(a.atttypid, a.atttypmod) "
      "FROM pg_catalog.pg_attribute a WHERE a.attrelid = " +
      oid_text(relid) + " AND a.attnum > 0 AND NOT a.attisdropped AND pg_catalog.quote_ident(a.attname) = ANY (ARRAY[" +
      arr + "]::text[]) ORDER BY a.attnum");
  std::string defs;
  std::vector<std::string> ordered;
  for (uint64 i = 0; i < spi.rows(); ++i) {
    ordered.push_back(spi.text(i, 1));
    defs += spi.text(i, 1) + " " + spi.text(i, 2) + ", ";
  }
  std::string name = fresh_name(spi, "delta_" + oid_text(relid));
  // Every apply deletes what it consumed: vacuum as soon as autovacuum looks,
  // so that the queue's dead rows do not pile up between its rounds.
  spi.exec_once("CREATE TABLE " + name + " (" + defs +
                "__m int8 NOT NULL, __at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()) "
                "WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000, "
                "autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_cost_delay = 0)");
  arr.clear();
  for (const auto& c : ordered) arr += (arr.empty() ? "" : ", ") + quote_literal(c);
  spi.exec_once("INSERT INTO ivm.delta_tables (relid, name, columns) VALUES (" + oid_text(relid) + ", " +
                quote_literal(name) + ", ARRAY[" + arr + "]::text[])");
  invalidate();
}

// drop_unused_delta_tables: removes delta tables no deferred view reads.
void drop_unused_delta_tables(pg::Spi& spi) {
  AsCatalogOwner owner;
  spi.exec_once(
      "SELECT relid::oid, name FROM ivm.delta_tables t WHERE NOT EXISTS (SELECT 1 FROM ivm.dependencies d "
      "JOIN ivm.views v USING (viewid) WHERE d.relid = t.relid AND v.mode <> 'immediate')");
  std::vector<std::pair<std::string, std::string>> unused;
  for (uint64 i = 0; i < spi.rows(); ++i) unused.push_back({spi.text(i, 1), spi.text(i, 2)});
  for (const auto& [relid, name] : unused) {
    spi.exec_once("DROP TABLE IF EXISTS " + name);
    spi.exec_once("DELETE FROM ivm.delta_tables WHERE relid = " + relid);
  }
}

// The capture triggers of a base table, by who reads it.
//  - Statement triggers (transition tables) capture DML for immediate views,
//    and for deferred ones unless the table is WAL-captured.  ENABLE ALWAYS:
//    they fire in sessions with session_replication_role = replica too, and
//    for a subscription's initial table copy (COPY fires them).
//  - A subscription's apply worker fires row triggers only (and only ENABLE
//    ALWAYS or REPLICA ones), never statement triggers: ivm.capture_row(),
//    ENABLE REPLICA, captures its rows where the statement triggers would.
//  - TRUNCATE triggers for every reader (ENABLE ALWAYS, the apply worker
//    fires them): immediate views are rebuilt, delta tables get the vanishing
//    rows, WAL-captured ones included (decoding no longer sees them).
struct CaptureTrigger {
  const char* name;
  const char* definition;  // %s: the table
  char enabled;            // pg_trigger.tgenabled wanted
  bool dml;                // only where DML is captured by triggers
};
const CaptureTrigger kTriggers[] = {
    {"ivm_capture_ins",
     "AFTER INSERT ON %s REFERENCING NEW TABLE AS ivm_new FOR EACH STATEMENT EXECUTE FUNCTION ivm.capture()", 'A',
     true},
    {"ivm_capture_upd",
     "AFTER UPDATE ON %s REFERENCING OLD TABLE AS ivm_old NEW TABLE AS ivm_new FOR EACH STATEMENT EXECUTE FUNCTION "
     "ivm.capture()",
     'A', true},
    {"ivm_capture_del",
     "AFTER DELETE ON %s REFERENCING OLD TABLE AS ivm_old FOR EACH STATEMENT EXECUTE FUNCTION ivm.capture()", 'A',
     true},
    {"ivm_capture_row", "AFTER INSERT OR DELETE OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION ivm.capture_row()", 'R',
     true},
    {"ivm_capture_trunc", "AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION ivm.capture()", 'A', false},
    {"ivm_capture_btrunc", "BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION ivm.capture()", 'A', false},
};

// sync_capture_triggers: gives base table relid the capture triggers its
// readers need now (none once no view reads it).
void sync_capture_triggers(pg::Spi& spi, std::uint32_t relid) {
  // ivm creates and drops them itself (dropping a trigger takes the table's
  // owner); create_view checked that the caller holds the TRIGGER privilege.
  AsCatalogOwner owner;
  OwnDdl own;
  pg::PinnedSearchPath pinned;  // pg_get_triggerdef then qualifies names as relation_name() does
  spi.exec_once("SELECT 1 FROM pg_catalog.pg_class WHERE oid = " + oid_text(relid));
  if (spi.rows() == 0) return;
  spi.exec_once(
      "SELECT count(*) > 0, coalesce(bool_or(v.mode = 'immediate'), false), "
      "coalesce(bool_or(v.mode = 'deferred'), false), coalesce(bool_or(v.mode = 'wal'), false) "
      "FROM ivm.dependencies d JOIN ivm.views v USING (viewid) WHERE d.relid = " +
      oid_text(relid));
  bool any = spi.boolean(0, 1), immediate = spi.boolean(0, 2), deferred = spi.boolean(0, 3), wal = spi.boolean(0, 4);
  bool dml = immediate || (deferred && !wal);
  std::string rel = relation_name(relid);
  for (const auto& t : kTriggers) {
    bool want = t.dml ? dml : any;
    spi.exec_once(
        "SELECT tgenabled::text, pg_catalog.pg_get_triggerdef(oid) FROM pg_catalog.pg_trigger WHERE tgrelid = " +
        oid_text(relid) + " AND tgname = '" + t.name + "'");
    bool exists = spi.rows() > 0;
    std::string enabled = exists ? spi.text(0, 1) : "";
    std::string def = t.definition;
    def.replace(def.find("%s"), 2, rel);
    bool ours = exists && spi.text(0, 2) == std::string("CREATE TRIGGER ") + t.name + " " + def;
    if (!want) {
      if (ours) spi.exec_once(std::string("DROP TRIGGER ") + t.name + " ON " + rel);
      continue;
    }
    if (exists && !ours)
      // Someone's trigger under ivm's name (ivm.capture() trusts the name):
      // it might capture other events, or only some changes.
      throw Error(ERRCODE_DUPLICATE_OBJECT,
                  std::string("trigger \"") + t.name + "\" for relation " + rel + " is not ivm's",
                  "ivm captures the table's changes with a trigger of that name, defined as: CREATE TRIGGER " +
                      std::string(t.name) + " " + def + ".",
                  "Drop or rename that trigger.");
    if (!exists) spi.exec_once(std::string("CREATE TRIGGER ") + t.name + " " + def);
    if (enabled != std::string(1, t.enabled))
      spi.exec_once("ALTER TABLE " + rel + (t.enabled == 'A' ? " ENABLE ALWAYS TRIGGER " : " ENABLE REPLICA TRIGGER ") +
                    t.name);
  }
}

// family: the view and the internal views (subqueries) it owns, which share
// its mode.
std::vector<std::uint32_t> family(pg::Spi& spi, std::uint32_t view) {
  spi.exec_once(
      "WITH RECURSIVE f(viewid) AS (SELECT " + oid_text(view) +
      "::oid UNION SELECT v.viewid::oid FROM ivm.views v JOIN f ON v.parent = f.viewid) SELECT viewid FROM f");
  std::vector<std::uint32_t> out;
  for (uint64 i = 0; i < spi.rows(); ++i) out.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
  return out;
}

// rebase: makes the plan's oids current.  A dump restored into another
// database recreates every relation under its old name but with a new oid.
// ivm's catalog follows (its relation columns are regclass, which pg_dump
// writes as names), but the serialized plan still holds the old oids.  The
// names are what the plan's SQL reads, so each leaf takes the oid its name
// has now (a name that no longer resolves keeps its oid).
void rebase(plan::ViewPlan& p, std::uint32_t view) {
  p.oid = view;
  for (auto& l : p.leaves) {
    Oid now = pg::relation_oid(l.relation);
    if (OidIsValid(now)) l.relid = now;
  }
}

// record_dependencies: tells PostgreSQL what the view table depends on, so
// that its own dependency machinery protects the view: it refuses to drop a
// relation or column the view reads (or drops the view with CASCADE: DROP
// TABLE, DROP SCHEMA, DROP OWNED, ALTER TABLE DROP COLUMN alike), drops the
// view with DROP EXTENSION ivm CASCADE, and treats the view's state tables as
// parts of it (dropped with it, never alone).
// attnum: the number of column `column` (quoted) of relid, or 0.
int attnum(pg::Spi& spi, std::uint32_t relid, const std::string& column) {
  spi.exec_once("SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = " + oid_text(relid) +
                " AND attnum > 0 AND NOT attisdropped AND pg_catalog.quote_ident(attname) = " + quote_literal(column));
  return spi.rows() == 1 ? std::stoi(spi.text(0, 1)) : 0;
}

// unique_column: for a unique_key plan, the column of leaf l that is unique:
// its join key (outer joins), or the locator's column (a view over one
// relation); a plain column "alias.column" either way.
std::string unique_column(const plan::ViewPlan& p, const plan::Leaf& l) {
  const std::string& e = p.outer ? l.key : p.outputs[static_cast<std::size_t>(p.locator)];
  return e.substr(l.alias.size() + 1);
}

analyze::Uniqueness unique_on(pg::Spi& spi, std::uint32_t view, const std::string& column);

// keys_unique: whether a unique_key plan's inputs still prove it: each table
// a unique index on its key column (analyze::unique_index_on; the primary key
// for a view over one relation, whose key must never be NULL), each view the
// uniqueness unique_on reports.  False for a restored database without the
// index, or after the index was dropped.
bool keys_unique(pg::Spi& spi, const plan::ViewPlan& p) {
  for (const auto& l : p.leaves) {
    std::string column = unique_column(p, l);
    if (l.is_view) {
      analyze::Uniqueness u = unique_on(spi, l.relid, column);
      if (u == analyze::Uniqueness::None || (!p.outer && u != analyze::Uniqueness::Strict)) return false;
      continue;
    }
    int att = attnum(spi, l.relid, column);
    if (att <= 0 || analyze::unique_index_on(l.relid, att, !p.outer) == 0) return false;
  }
  return true;
}

// unique_on: what ivm view `view` guarantees about its column `column`: an
// aggregate grouped by that column alone has one row per value (a NULL group
// included); a keyed outer-join view whose key is unique and shown in that
// column, one row per value, never NULL when its preserved leaf's key is
// never NULL; a view over one relation with a unique locator, one row per
// value of it, never NULL.
analyze::Uniqueness unique_on(pg::Spi& spi, std::uint32_t view, const std::string& column) {
  using analyze::Uniqueness;
  plan::ViewPlan v = load_plan(spi, view);
  if (v.aggregate)
    return v.groups.size() == 1 && v.group_columns.size() == 1 &&
                   v.columns[static_cast<std::size_t>(v.group_columns[0])] == column
               ? Uniqueness::Unique
               : Uniqueness::None;
  if (!v.unique_key) return Uniqueness::None;
  if (!v.outer) return v.columns[static_cast<std::size_t>(v.locator)] == column ? Uniqueness::Strict : Uniqueness::None;
  if (v.view_key < 0 || v.columns[static_cast<std::size_t>(v.view_key)] != column) return Uniqueness::None;
  for (const auto& l : v.leaves) {
    if (l.key != v.outputs[static_cast<std::size_t>(v.view_key)]) continue;
    std::string col = l.key.substr(l.alias.size() + 1);
    int att = l.is_view ? 0 : attnum(spi, l.relid, col);
    bool strict = l.is_view ? unique_on(spi, l.relid, col) == Uniqueness::Strict
                            : att > 0 && analyze::unique_index_on(l.relid, att, true) != 0;
    return strict ? Uniqueness::Strict : Uniqueness::Unique;
  }
  return Uniqueness::Unique;
}

void record_dependencies(pg::Spi& spi, const plan::ViewPlan& p, const std::vector<std::uint32_t>& inputs) {
  std::set<std::pair<std::uint32_t, int>> columns;
  for (const auto& l : p.leaves) {
    if (l.columns.empty()) continue;
    std::string arr;
    for (const auto& c : l.columns) arr += (arr.empty() ? "" : ", ") + quote_literal(c);
    spi.exec_once("SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = " + oid_text(l.relid) +
                  " AND attnum > 0 AND NOT attisdropped AND pg_catalog.quote_ident(attname) = ANY (ARRAY[" + arr +
                  "]::text[])");
    for (uint64 i = 0; i < spi.rows(); ++i) columns.insert({l.relid, std::stoi(spi.text(i, 1))});
  }
  std::vector<std::uint32_t> parts;
  for (const std::string& t : {p.state, p.keylock}) {
    if (t.empty()) continue;
    spi.exec_once("SELECT " + quote_literal(t) + "::pg_catalog.regclass::oid");
    parts.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(0, 1))));
  }
  pg_call([&] {
    ObjectAddress view, other;
    ObjectAddressSet(view, RelationRelationId, p.oid);
    for (std::uint32_t r : inputs) {
      ObjectAddressSet(other, RelationRelationId, r);
      recordDependencyOn(&view, &other, DEPENDENCY_NORMAL);
    }
    for (const auto& [r, att] : columns) {
      ObjectAddressSubSet(other, RelationRelationId, r, att);
      recordDependencyOn(&view, &other, DEPENDENCY_NORMAL);
    }
    ObjectAddressSet(other, ExtensionRelationId, get_extension_oid("ivm", false));
    recordDependencyOn(&view, &other, DEPENDENCY_NORMAL);
    for (std::uint32_t t : parts) {
      ObjectAddressSet(other, RelationRelationId, t);
      recordDependencyOn(&other, &view, DEPENDENCY_INTERNAL);
    }
  });
}

}  // namespace

namespace {
int own_ddl_depth = 0;
}
OwnDdl::OwnDdl() { ++own_ddl_depth; }
OwnDdl::~OwnDdl() {
  if (own_ddl_depth > 0) --own_ddl_depth;
}
bool OwnDdl::active() { return own_ddl_depth > 0; }

std::uint64_t catalog_generation() {
  watch_catalog();
  return generation;
}

Oid catalog_owner() {
  // Looked up each time (two cache lookups): the extension may have been
  // dropped and created again since this backend last looked.
  Oid views = pg_call([] { return get_relname_relid("views", get_namespace_oid("ivm", false)); });
  return pg::relation_owner(views);
}

bool is_view(pg::Spi& spi, std::uint32_t relid) {
  spi.exec("SELECT 1 FROM ivm.views WHERE viewid = " + oid_text(relid));
  return spi.rows() > 0;
}

std::uint32_t lookup(pg::Spi& spi, const std::string& name) {
  Oid relid = pg::relation_oid(name);
  if (!OidIsValid(relid) || !is_view(spi, relid))
    throw Error(ERRCODE_UNDEFINED_OBJECT, "incremental view \"" + name + "\" does not exist", "",
                "ivm.views lists the incremental views.");
  return relid;
}

plan::ViewPlan load_plan(pg::Spi& spi, std::uint32_t view) {
  spi.exec("SELECT plan FROM ivm.views WHERE viewid = " + oid_text(view));
  if (spi.rows() != 1) throw Error(ERRCODE_UNDEFINED_OBJECT, "incremental view " + oid_text(view) + " does not exist");
  plan::ViewPlan p = plan::deserialize(spi.text(0, 1));
  rebase(p, view);
  return p;
}

std::string definition(pg::Spi& spi, std::uint32_t view) {
  spi.exec("SELECT definition FROM ivm.views WHERE viewid = " + oid_text(view));
  if (spi.rows() != 1) throw Error(ERRCODE_UNDEFINED_OBJECT, "incremental view " + oid_text(view) + " does not exist");
  return spi.text(0, 1);
}

std::vector<Dependent> dependents(pg::Spi& spi, std::uint32_t relation) {
  watch_catalog();
  auto key = relation;
  auto cached = dependents_cache().find(key);
  if (cached != dependents_cache().end()) return cached->second;
  spi.exec("WITH RECURSIVE r(viewid) AS (SELECT viewid FROM ivm.dependencies WHERE relid = " + oid_text(relation) +
           " UNION SELECT d.viewid FROM ivm.dependencies d JOIN r ON d.relid = r.viewid) "
           "SELECT v.viewid::oid, v.xmin::text, v.mode = 'immediate', v.level FROM ivm.views v JOIN r USING (viewid) "
           "ORDER BY v.level, v.viewid");
  struct Row {
    std::uint32_t oid;
    std::string version;
    bool immediate;
    int level;
  };
  std::vector<Row> rows;
  for (uint64 i = 0; i < spi.rows(); ++i)
    rows.push_back({static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))), spi.text(i, 2), spi.boolean(i, 3),
                    std::stoi(spi.text(i, 4))});
  std::vector<Dependent> out;
  auto& cache = plan_cache();
  for (const Row& r : rows) {
    auto it = cache.find(r.oid);
    if (it == cache.end() || it->second.version != r.version) {
      cache[r.oid] = CachedPlan{r.version, load_plan(spi, r.oid)};
      it = cache.find(r.oid);
    }
    out.push_back({r.oid, r.level, !r.immediate, it->second.plan});
  }
  dependents_cache()[key] = out;
  return out;
}

const std::set<std::uint32_t>& view_tables(pg::Spi& spi) {
  watch_catalog();
  auto& cache = view_table_cache();
  if (cache) return *cache;
  std::set<std::uint32_t> out;
  spi.exec("SELECT viewid::oid FROM ivm.views");
  for (uint64 i = 0; i < spi.rows(); ++i) out.insert(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
  cache = std::move(out);
  return *cache;
}

const std::set<std::uint32_t>* cached_view_tables() {
  if (!callback_registered || views_recheck) return nullptr;
  auto& cache = view_table_cache();
  return cache ? &*cache : nullptr;
}

const CaptureRoute* cached_capture_route(std::uint32_t relation) {
  if (!callback_registered) return nullptr;
  auto it = route_cache().find(relation);
  return it == route_cache().end() ? nullptr : &it->second;
}

const CaptureRoute& capture_route(pg::Spi& spi, std::uint32_t relation) {
  watch_catalog();
  auto it = route_cache().find(relation);
  if (it != route_cache().end()) return it->second;
  CaptureRoute r;
  spi.exec("SELECT EXISTS (SELECT 1 FROM ivm.dependencies d JOIN ivm.views v USING (viewid) WHERE d.relid = " +
           oid_text(relation) + " AND v.mode = 'immediate')");
  r.immediate_readers = spi.boolean(0, 1);
  // Copies: a statement below may process invalidations that empty the caches.
  const DeltaTable* cached = delta_table(spi, relation);
  std::optional<DeltaTable> copy;
  if (cached) copy = *cached;
  // A WAL-captured table's DML reaches its delta table from WAL: triggers
  // record nothing.
  if (const DeltaTable* dt = copy && !copy->from_wal ? &*copy : nullptr) {
    r.delta = dt->relid;
    for (const auto& c : dt->columns) {
      spi.exec("SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = " + oid_text(relation) +
               " AND NOT attisdropped AND attnum > 0 AND pg_catalog.quote_ident(attname) = " + quote_literal(c));
      if (spi.rows() != 1) {
        r.immediate_readers = true;  // something is off: take the general path
        break;
      }
      r.attnums.push_back(std::stoi(spi.text(0, 1)));
    }
  }
  return route_cache().emplace(relation, r).first->second;
}

const DeltaTable* delta_table(pg::Spi& spi, std::uint32_t relation) {
  watch_catalog();
  auto& cache = delta_cache();
  auto it = cache.find(relation);
  if (it == cache.end()) {
    // One row per column (none when the view reads no column of the
    // relation); the names are quoted identifiers, commas and all.
    spi.exec(
        "SELECT t.name, EXISTS (SELECT 1 FROM ivm.dependencies d JOIN ivm.views v USING (viewid) "
        "WHERE d.relid = t.relid AND NOT d.is_view AND v.mode = 'wal'), pg_catalog.to_regclass(t.name)::oid, u.c "
        "FROM ivm.delta_tables t LEFT JOIN LATERAL pg_catalog.unnest(t.columns) WITH ORDINALITY u(c, i) ON true "
        "WHERE t.relid = " +
        oid_text(relation) + " ORDER BY u.i");
    std::optional<DeltaTable> dt;
    if (spi.rows() > 0) {
      std::uint32_t oid = spi.is_null(0, 3) ? 0 : static_cast<std::uint32_t>(std::stoul(spi.text(0, 3)));
      dt = DeltaTable{spi.text(0, 1), {}, spi.boolean(0, 2), oid};
      for (uint64 i = 0; i < spi.rows(); ++i)
        if (!spi.is_null(i, 4)) dt->columns.push_back(spi.text(i, 4));
    }
    it = cache.emplace(relation, dt).first;
  }
  return it->second ? &*it->second : nullptr;
}

void append_rows(Relation delta, Tuplestorestate* store, TupleDesc source, const int* attnums, int k, int m_attno,
                 int64 m, TimestampTz at) {
  TupleDesc desc = RelationGetDescr(delta);
  int n = desc->natts;
  Datum* values = static_cast<Datum*>(palloc(sizeof(Datum) * n));
  bool* nulls = static_cast<bool*>(palloc(sizeof(bool) * n));
  TupleTableSlot* slot = MakeSingleTupleTableSlot(source, &TTSOpsMinimalTuple);
  pg::begin_own_scan(store);
  while (tuplestore_gettupleslot(store, true, false, slot)) {
    CHECK_FOR_INTERRUPTS();  // a statement may have changed millions of rows
    slot_getallattrs(slot);
    for (int i = 0; i < k; i++) {
      values[i] = slot->tts_values[attnums[i] - 1];
      nulls[i] = slot->tts_isnull[attnums[i] - 1];
    }
    values[k] = m_attno > 0 ? slot->tts_values[m_attno - 1] : Int64GetDatum(m);
    nulls[k] = false;
    values[k + 1] = TimestampTzGetDatum(at);
    nulls[k + 1] = false;
    HeapTuple tuple = heap_form_tuple(desc, values, nulls);
    simple_heap_insert(delta, tuple);
    heap_freetuple(tuple);
  }
  pg::end_own_scan(store);
  ExecDropSingleTupleTableSlot(slot);
}

bool append_change(pg::Spi& spi, const DeltaTable& dt, const std::string& from, const std::string& m) {
  Tuplestorestate* store = nullptr;
  TupleDesc source = nullptr;
  if (dt.relid == 0 || !spi.find_store(from, store, source)) return false;
  return pg::pg_call([&] {
    // Each delta column from the change's column of that name and type.
    auto find = [&](const std::string& quoted) {
      for (int a = 0; a < source->natts; ++a) {
        Form_pg_attribute att = TupleDescAttr(source, a);
        if (!att->attisdropped && quoted == quote_identifier(NameStr(att->attname))) return a + 1;
      }
      return 0;
    };
    int m_attno = m == "__m" ? find("__m") : 0;
    if (m == "__m" && (m_attno == 0 || TupleDescAttr(source, m_attno - 1)->atttypid != INT8OID)) return false;
    Relation delta = table_open(dt.relid, RowExclusiveLock);
    TupleDesc desc = RelationGetDescr(delta);
    int k = static_cast<int>(dt.columns.size());
    int* attnums = static_cast<int*>(palloc(sizeof(int) * static_cast<std::size_t>(k + 1)));
    bool ok = desc->natts == k + 2;
    for (int i = 0; i < k && ok; ++i) {
      attnums[i] = find(dt.columns[static_cast<std::size_t>(i)]);
      ok = attnums[i] > 0 && TupleDescAttr(source, attnums[i] - 1)->atttypid == TupleDescAttr(desc, i)->atttypid;
    }
    if (ok) append_rows(delta, store, source, attnums, k, m_attno, m == "-1" ? -1 : 1, GetCurrentTimestamp());
    pfree(attnums);
    table_close(delta, RowExclusiveLock);
    return ok;
  });
}

std::vector<std::uint32_t> delta_relations(pg::Spi& spi, std::uint32_t view) {
  if (view == 0)
    spi.exec_once("SELECT relid::oid FROM ivm.delta_tables ORDER BY relid");
  else
    spi.exec_once("WITH RECURSIVE r(relid) AS (SELECT relid FROM ivm.dependencies WHERE viewid = " + oid_text(view) +
                  " UNION SELECT d.relid FROM ivm.dependencies d JOIN r ON d.viewid = r.relid) "
                  "SELECT relid::oid FROM ivm.delta_tables WHERE relid IN (SELECT relid FROM r) ORDER BY relid");
  std::vector<std::uint32_t> out;
  for (uint64 i = 0; i < spi.rows(); ++i) out.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
  return out;
}

std::vector<std::uint32_t> base_tables(pg::Spi& spi, std::uint32_t view) {
  spi.exec_once("WITH RECURSIVE r(relid, is_view) AS (SELECT relid, is_view FROM ivm.dependencies WHERE viewid = " +
                oid_text(view) +
                " UNION SELECT d.relid, d.is_view FROM ivm.dependencies d JOIN r ON d.viewid = r.relid) "
                "SELECT DISTINCT relid::oid FROM r WHERE NOT is_view ORDER BY 1");
  std::vector<std::uint32_t> tables;
  for (uint64 i = 0; i < spi.rows(); ++i) tables.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
  return tables;
}

void full_replica_identity(pg::Spi& spi, std::uint32_t relid) {
  AsCatalogOwner owner;
  spi.exec_once("SELECT relreplident::text FROM pg_catalog.pg_class WHERE oid = " + oid_text(relid));
  if (spi.rows() > 0 && spi.text(0, 1) != "f")
    spi.exec_once("ALTER TABLE " + relation_name(relid) + " REPLICA IDENTITY FULL");
}

void lock_base_tables(pg::Spi& spi, std::uint32_t view) {
  std::vector<std::uint32_t> tables = base_tables(spi, view);
  // Locked without LOCK TABLE, which would ask the caller for UPDATE, DELETE
  // or TRUNCATE on tables it only reads.
  for (std::uint32_t t : tables) pg_call([t] { LockRelationOid(t, ShareLock); });
}

std::vector<std::uint32_t> delta_closure(pg::Spi& spi, std::vector<std::uint32_t> relations) {
  std::sort(relations.begin(), relations.end());
  for (;;) {
    if (relations.empty()) return relations;
    std::string list;
    for (std::uint32_t r : relations) list += (list.empty() ? "" : ",") + oid_text(r);
    spi.exec_once(
        "WITH RECURSIVE fed(viewid) AS (SELECT d.viewid FROM ivm.dependencies d JOIN ivm.views v USING (viewid) "
        "WHERE v.mode <> 'immediate' AND d.relid = ANY ('{" +
        list +
        "}'::oid[]) "
        "UNION SELECT d.viewid FROM ivm.dependencies d JOIN fed ON d.relid = fed.viewid) "
        "SELECT DISTINCT dt.relid::oid FROM fed JOIN ivm.views v USING (viewid) JOIN ivm.dependencies d USING (viewid) "
        "JOIN ivm.delta_tables dt ON dt.relid = d.relid WHERE v.mode <> 'immediate'");
    std::vector<std::uint32_t> more = relations;
    for (uint64 i = 0; i < spi.rows(); ++i) more.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
    std::sort(more.begin(), more.end());
    more.erase(std::unique(more.begin(), more.end()), more.end());
    if (more == relations) return relations;
    relations = more;
  }
}

std::string view_mode(pg::Spi& spi, std::uint32_t view) {
  spi.exec_once("SELECT mode FROM ivm.views WHERE viewid = " + oid_text(view));
  return spi.rows() ? spi.text(0, 1) : "";
}

void set_mode(pg::Spi& spi, std::uint32_t view, const std::string& mode) {
  modes_check(mode);
  AsCatalogOwner owner;
  std::vector<std::uint32_t> views = family(spi, view);
  for (std::uint32_t v : views)
    spi.exec_once("UPDATE ivm.views SET mode = " + quote_literal(mode) + " WHERE viewid = " + oid_text(v));
  if (mode != "immediate") {
    for (std::uint32_t v : views) {
      spi.exec_once("SELECT relid::oid FROM ivm.dependencies WHERE viewid = " + oid_text(v));
      std::vector<std::uint32_t> inputs;
      for (uint64 i = 0; i < spi.rows(); ++i) inputs.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
      plan::ViewPlan p = load_plan(spi, v);
      for (std::uint32_t r : inputs) ensure_delta_table(spi, r, needed_columns(p, r));
    }
  }
  drop_unused_delta_tables(spi);
  invalidate();
  for (std::uint32_t t : base_tables(spi, view)) sync_capture_triggers(spi, t);
}

namespace {

// check_rights: whether `caller` may create a view reading `inputs`.  It must
// be able to read them, and to let the view's maintenance run with every
// change to them (a failing view fails the change): what CREATE TRIGGER asks.
// Row-level security that applies to it cannot be maintained: the view would
// mix filtered tables with unfiltered changes.
void check_rights(const std::vector<std::uint32_t>& inputs, Oid caller) {
  for (std::uint32_t r : inputs) {
    std::string rel = relation_name(r);
    for (AclMode mode : {ACL_SELECT, ACL_TRIGGER}) {
      bool ok = pg_call([&] { return pg_class_aclcheck(r, caller, mode) == ACLCHECK_OK; });
      if (ok) continue;
      bool select = mode == ACL_SELECT;
      throw Error(
          ERRCODE_INSUFFICIENT_PRIVILEGE, "permission denied for table " + rel,
          select ? "Creating an incremental view needs the SELECT privilege on every relation it reads."
                 : "Creating an incremental view needs the TRIGGER privilege on every relation it reads: "
                   "the view is maintained with every change to them.",
          "The table's owner can grant it: GRANT SELECT, TRIGGER ON " + rel + " TO " + pg::role_name(caller) + ";");
    }
    bool rls = pg_call([&] { return check_enable_rls(r, caller, true) == RLS_ENABLED; });
    if (rls)
      throw Error(ERRCODE_FEATURE_NOT_SUPPORTED, "row-level security is not supported in incremental views",
                  "Policies of table " + rel + " apply to role " + pg::role_name(caller) + ", who would own the view.",
                  "Create the view as a role that bypasses them (the table's owner, unless the table forces "
                  "row-level security, or a role with BYPASSRLS): the view then holds every row, and GRANT on the "
                  "view decides who reads them.");
  }
}

// create: create_view, for a view of the user (internal = false) or a
// subquery of one (an internal view in ivm_state, created by ivm).
std::uint32_t create(pg::Spi& spi, const std::string& name, const std::string& query, const std::string& mode,
                     bool internal) {
  modes_check(mode);
  // The view's owner: maintenance runs with its rights.
  Oid caller = GetUserId();
  // Where the view table goes: resolved with the caller's search_path.
  Oid nsp = InvalidOid;
  std::string relname;
  char persistence = RELPERSISTENCE_PERMANENT;
  pg_call([&] {
    RangeVar* rv = makeRangeVarFromNameList(stringToQualifiedNameList(name.c_str()));
    persistence = rv->relpersistence;
    nsp = RangeVarGetCreationNamespace(rv);
    relname = rv->relname;
  });
  // A temporary view table would vanish with the session while other
  // sessions' writes still had to maintain it.
  if (persistence == RELPERSISTENCE_TEMP || pg_call([&] { return isAnyTempNamespace(nsp); }))
    throw Error(ERRCODE_FEATURE_NOT_SUPPORTED, "incremental views cannot be temporary",
                "Writers in every session maintain an incremental view.", "Create it in a permanent schema.");
  std::string nspname = pg_call([&] { return std::string(get_namespace_name(nsp)); });
  if (!internal && (nspname == "ivm" || nspname == "ivm_state"))
    throw Error(ERRCODE_RESERVED_NAME, "schema " + nspname + " is reserved for ivm's own objects", "",
                "Create the view in another schema.");
  if (pg_call([&] { return OidIsValid(get_relname_relid(relname.c_str(), nsp)); }))
    throw Error(ERRCODE_DUPLICATE_TABLE, "relation \"" + name + "\" already exists");
  std::string qualified =
      pg_call([&] { return std::string(quote_qualified_identifier(get_namespace_name(nsp), relname.c_str())); });

  std::vector<std::uint32_t> internals;
  analyze::MaterializeFn materialize = [&](const std::string& def) {
    std::string iname;
    {
      AsCatalogOwner owner;
      spi.exec_once("SELECT pg_catalog.nextval('ivm.internal_seq')");
      iname = fresh_name(spi, "sq_" + spi.text(0, 1));
    }
    std::uint32_t oid = create(spi, iname, def, mode, true);  // a subquery lags with its view
    internals.push_back(oid);
    return oid;
  };
  analyze::IsViewFn view_p = [&](std::uint32_t relid) { return is_view(spi, relid); };
  analyze::UniqueFn unique_p = [&](std::uint32_t relid, const std::string& column) {
    return unique_on(spi, relid, column);
  };
  analyze::Analysis a = analyze::analyze_query(query, materialize, view_p, unique_p);
  check_rights(a.inputs, caller);

  pg::PinnedSearchPath pinned;
  if (mode == "wal")
    for (std::uint32_t r : a.inputs)
      if (!is_view(spi, r)) full_replica_identity(spi, r);
  // Writers of the inputs wait until this transaction commits: the view is
  // populated from a state no concurrent change can slip past.  Locked
  // without LOCK TABLE, which would ask for more than reading rights.
  for (std::uint32_t r : a.inputs) pg_call([r] { LockRelationOid(r, ShareLock); });

  // Changes still waiting in the inputs' delta tables (for other deferred
  // views) are applied first: the new view is filled from the tables as they
  // are, and must not receive those changes a second time.
  std::vector<std::uint32_t> pending;
  for (std::uint32_t r : a.inputs)
    if (delta_table(spi, r)) pending.push_back(r);
  if (!pending.empty()) apply::apply_relations(spi, pending);

  std::string create_table =
      "CREATE TABLE " + qualified + plan::storage_options(a.plan) + " AS " + a.definition + " WITH NO DATA";
  std::string owned_by = " OWNER TO " + pg::role_name(caller);
  if (internal) {
    // Only ivm creates objects in ivm_state; the view is the caller's all the same.
    AsCatalogOwner owner;
    spi.exec_once(create_table);
    spi.exec_once("ALTER TABLE " + qualified + owned_by);
  } else {
    spi.exec_once(create_table);
    // With wal_level = logical, every update and delete of a view row logs the
    // whole old row: consumers of the ivm output plugin need it to replay the
    // change (a view has no key).  Internal views are never streamed.
    spi.exec_once("ALTER TABLE " + qualified + " REPLICA IDENTITY FULL");
  }
  Oid oid = pg_call([&] { return get_relname_relid(relname.c_str(), nsp); });
  plan::ViewPlan& p = a.plan;
  p.name = qualified;
  p.oid = oid;
  {
    AsCatalogOwner owner;
    if (p.aggregate) p.state = fresh_name(spi, "s_" + oid_text(oid));
    if (!p.key_type.empty()) p.keylock = fresh_name(spi, "k_" + oid_text(oid));
    for (const auto& sql : plan::sql_create_storage(p)) spi.exec_once(sql);
    // The view's owner maintains its state.
    if (!p.state.empty()) spi.exec_once("ALTER TABLE " + p.state + owned_by);
    if (!p.keylock.empty()) spi.exec_once("ALTER TABLE " + p.keylock + owned_by);
  }
  spi.exec_once("CREATE TRIGGER ivm_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON " + qualified +
                " FOR EACH STATEMENT EXECUTE FUNCTION ivm.guard()");
  int level = 1;
  for (const auto& l : p.leaves) {
    if (l.is_view) {
      spi.exec_once("SELECT level FROM ivm.views WHERE viewid = " + oid_text(l.relid));
      level = std::max(level, std::stoi(spi.text(0, 1)) + 1);
    }
  }
  {
    AsCatalogOwner owner;
    spi.exec_once(
        "INSERT INTO ivm.views (viewid, name, query, definition, querytree, mode, level, plan, internal) VALUES (" +
        oid_text(oid) + ", " + quote_literal(qualified) + ", " + quote_literal(analyze::strip_query(query)) + ", " +
        quote_literal(a.definition) + ", " + quote_literal(a.querytree) + ", " + quote_literal(mode) + ", " +
        std::to_string(level) + ", " + quote_literal(plan::serialize(p)) + ", " + (internal ? "true" : "false") + ")");
    for (std::uint32_t r : a.inputs)
      spi.exec_once("INSERT INTO ivm.dependencies (viewid, relid, is_view) VALUES (" + oid_text(oid) + ", " +
                    oid_text(r) + ", " + (is_view(spi, r) ? "true" : "false") + ")");
    for (std::uint32_t i : internals)
      spi.exec_once("UPDATE ivm.views SET parent = " + oid_text(oid) + " WHERE viewid = " + oid_text(i));
  }
  record_dependencies(spi, p, a.inputs);
  if (mode != "immediate")
    for (std::uint32_t r : a.inputs) ensure_delta_table(spi, r, needed_columns(p, r));
  invalidate();
  for (const auto& l : p.leaves)
    if (!l.is_view) sync_capture_triggers(spi, l.relid);
  apply::AsViewOwner owner(p);
  // Filled through ivm.progress_tick(), which counts the rows read and
  // reports progress: filling a view over a large table takes a while.
  plan::ViewPlan fill = p;
  if (progress_interval() > 0)
    for (auto& l : fill.leaves) l.relation = "(SELECT * FROM " + l.relation + " WHERE ivm.progress_tick())";
  PopulateProgress progress(qualified);
  uint64 rows = apply::populate(spi, fill);
  {
    // In ivm_state, where only ivm creates objects.
    AsCatalogOwner indexer;
    OwnDdl own;
    for (const auto& sql : plan::sql_create_indexes(p)) spi.exec_once(sql);
  }
  progress.done(rows);
  return oid;
}

}  // namespace

std::uint32_t create_view(pg::Spi& spi, const std::string& name, const std::string& query, const std::string& mode) {
  return create(spi, name, query, mode, false);
}

namespace {

// reprove: p's unique_key as its inputs prove it now (a key proven before,
// or one its shape allows: plan::ViewPlan::key_provable); whether it changed.
bool reprove(pg::Spi& spi, plan::ViewPlan& p) {
  bool proven = (p.unique_key || p.key_provable) && keys_unique(spi, p);
  if (proven == p.unique_key) return false;
  p.unique_key = proven;
  return true;
}

}  // namespace

void repair_restored(pg::Spi& spi, std::uint32_t view) {
  AsCatalogOwner owner;
  spi.exec_once("SELECT definition FROM ivm.views WHERE viewid = " + oid_text(view));
  if (spi.rows() == 0) return;  // create_view itself, before its catalog row
  std::string definition = spi.text(0, 1);
  // The plan is stored with the oids it was loaded with (load_plan takes them
  // from the names), so that a later rename finds its relations by oid.
  plan::ViewPlan p = load_plan(spi, view);
  // A restored database without the unique index the plan relied on keeps
  // the view exact through the general keyed maintenance (and one with an
  // index the original lacked proves the key).
  reprove(spi, p);
  spi.exec_once("UPDATE ivm.views SET querytree = " + quote_literal(analyze::querytree_of(definition)) +
                ", plan = " + quote_literal(plan::serialize(p)) + " WHERE viewid = " + oid_text(view));
  spi.exec_once(
      "SELECT 1 FROM pg_catalog.pg_depend WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
      "AND objid = " +
      oid_text(view) + " AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass");
  if (spi.rows() > 0) return;  // recorded already
  spi.exec_once("SELECT relid::oid FROM ivm.dependencies WHERE viewid = " + oid_text(view) + " ORDER BY 1");
  std::vector<std::uint32_t> inputs;
  for (uint64 i = 0; i < spi.rows(); ++i) inputs.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
  record_dependencies(spi, p, inputs);
}

void recheck_unique_keys(pg::Spi& spi) {
  // Whoever ran the DDL, every view is proven again: their plans name
  // relations in schemas that role may not even see.  Only catalogs and
  // stored plans are read, no user code runs.
  AsCatalogOwner owner;
  spi.exec_once("SELECT viewid::oid FROM ivm.views ORDER BY level, viewid");
  std::vector<std::uint32_t> views;
  for (uint64 i = 0; i < spi.rows(); ++i) views.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
  bool changed = false;
  for (std::uint32_t v : views) {
    plan::ViewPlan p = load_plan(spi, v);
    if (!reprove(spi, p)) continue;
    // Views further down read it back (unique_on) in this loop.
    spi.exec_once("UPDATE ivm.views SET plan = " + quote_literal(plan::serialize(p)) +
                  " WHERE viewid = " + oid_text(v));
    changed = true;
  }
  if (changed) invalidate();
}

void upgrade_storage(pg::Spi& spi, std::uint32_t view) {
  plan::ViewPlan p = load_plan(spi, view);
  std::vector<std::string> adds;
  for (std::size_t i = 0; i < p.aggs.size(); ++i) {
    if (p.aggs[i].kind != plan::AggKind::Min && p.aggs[i].kind != plan::AggKind::Max) continue;
    adds.push_back("ADD COLUMN x" + std::to_string(i) + " int8");
    adds.push_back("ADD COLUMN dc" + std::to_string(i) + " int8");
  }
  AsCatalogOwner owner;
  if (!adds.empty() && !p.extreme_counts) {
    OwnDdl own;
    std::string list;
    for (const auto& a : adds) list += (list.empty() ? "" : ", ") + a;
    // NULL counts: not known yet, learnt at the group's next recomputation.
    spi.exec_once("ALTER TABLE " + p.state + " " + list);
  }
  {
    // Tables created before 0.2 have full pages: new pages leave room for
    // updates in place (see plan::kFillfactor).  The view's owner owns both.
    OwnDdl own;
    pg::AsRole as_owner(pg::relation_owner(p.oid));
    std::string ff = " SET (fillfactor = " + std::to_string(plan::kFillfactor) + ")";
    if (!plan::storage_options(p).empty()) spi.exec_once("ALTER TABLE " + p.name + ff);
    if (!p.state.empty()) spi.exec_once("ALTER TABLE " + p.state + ff);
  }
  if (p.extreme_counts) return;
  p.extreme_counts = true;
  spi.exec_once("UPDATE ivm.views SET plan = " + quote_literal(plan::serialize(p)) +
                " WHERE viewid = " + oid_text(view));
  plan_cache().erase(view);
  invalidate();
}

void drop_view(pg::Spi& spi, std::uint32_t view) {
  // The caller may drop the view (its owner, or DROP TABLE went through);
  // what the view leaves behind is ivm's to remove.
  AsCatalogOwner owner;
  spi.exec_once("SELECT v.name FROM ivm.dependencies d JOIN ivm.views v USING (viewid) WHERE d.relid = " +
                oid_text(view) + " AND v.parent IS DISTINCT FROM " + oid_text(view) + " ORDER BY 1");
  if (spi.rows() > 0) {
    std::string names;
    for (uint64 i = 0; i < spi.rows(); ++i) names += (i ? ", " : "") + spi.text(i, 1);
    throw Error(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST, "cannot drop incremental view because other views depend on it",
                "Incremental views reading it: " + names + ".", "Drop the dependent views first.");
  }
  // Changes of its tables already in WAL may still be owed to the deferred
  // views sharing their delta tables, which get triggers back once the table
  // is no longer read from WAL: catch up first, writers waiting.
  if (view_mode(spi, view) == "wal") {
    lock_base_tables(spi, view);
    apply::apply_relations(spi, delta_relations(spi, view));
  }
  plan::ViewPlan p = load_plan(spi, view);
  spi.exec_once("SELECT relid::oid FROM ivm.dependencies WHERE viewid = " + oid_text(view) + " AND NOT is_view");
  std::vector<std::uint32_t> inputs;
  for (uint64 i = 0; i < spi.rows(); ++i) inputs.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
  spi.exec_once("SELECT viewid::oid FROM ivm.views WHERE parent = " + oid_text(view));
  std::vector<std::uint32_t> children;
  for (uint64 i = 0; i < spi.rows(); ++i) children.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
  spi.exec_once("DELETE FROM ivm.dependencies WHERE viewid = " + oid_text(view));
  spi.exec_once("DELETE FROM ivm.views WHERE viewid = " + oid_text(view));
  drop_unused_delta_tables(spi);
  invalidate();
  // The table may be gone already (DROP TABLE of a view table ends here).
  spi.exec_once("SELECT 1 FROM pg_catalog.pg_class WHERE oid = " + oid_text(view));
  if (spi.rows() > 0) spi.exec_once("DROP TABLE " + p.name);
  // Its state tables went with it (they are internal parts of the view
  // table in pg_depend); this only covers a table dropped some other way.
  for (const std::string& t : {p.state, p.keylock}) {
    if (t.empty()) continue;
    spi.exec_once("SELECT pg_catalog.to_regclass(" + quote_literal(t) + ") IS NOT NULL");
    if (spi.boolean(0, 1)) spi.exec_once("DROP TABLE " + t);
  }
  for (std::uint32_t c : children) drop_view(spi, c);
  for (std::uint32_t r : inputs) sync_capture_triggers(spi, r);
  plan_cache().erase(view);
}

void follow_owner(pg::Spi& spi, std::uint32_t view) {
  Oid owner = pg::relation_owner(view);
  plan::ViewPlan p = load_plan(spi, view);
  spi.exec_once("SELECT viewid::oid FROM ivm.views WHERE parent = " + oid_text(view));
  std::vector<std::uint32_t> children;
  for (uint64 i = 0; i < spi.rows(); ++i) children.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
  std::vector<std::uint32_t> owned = children;
  for (const std::string& t : {p.state, p.keylock}) {
    if (t.empty()) continue;
    Oid relid = pg::relation_oid(t);
    if (OidIsValid(relid)) owned.push_back(relid);
  }
  {
    AsCatalogOwner as_ivm;
    for (std::uint32_t r : owned)
      if (pg::relation_owner(r) != owner)
        spi.exec_once("ALTER TABLE " + relation_name(r) + " OWNER TO " + pg::role_name(owner));
  }
  for (std::uint32_t c : children) follow_owner(spi, c);
}

void refresh_names(pg::Spi& spi, const std::vector<std::uint32_t>& relations, bool all) {
  if (!all && relations.empty()) return;
  std::string list;
  for (std::uint32_t r : relations) list += (list.empty() ? "" : ",") + oid_text(r);
  if (all)
    spi.exec_once("SELECT viewid::oid FROM ivm.views ORDER BY 1");
  else
    spi.exec_once("SELECT viewid::oid FROM ivm.views WHERE viewid = ANY ('{" + list +
                  "}'::oid[]) UNION "
                  "SELECT viewid::oid FROM ivm.dependencies WHERE relid = ANY ('{" +
                  list + "}'::oid[]) ORDER BY 1");
  std::vector<std::uint32_t> views;
  for (uint64 i = 0; i < spi.rows(); ++i) views.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
  pg::PinnedSearchPath pinned;  // names come out schema-qualified, as at create_view
  bool changed = false;
  for (std::uint32_t v : views) {
    spi.exec_once("SELECT plan, querytree, definition FROM ivm.views WHERE viewid = " + oid_text(v));
    std::string stored = spi.text(0, 1), tree = spi.text(0, 2), old_definition = spi.text(0, 3);
    plan::ViewPlan p = plan::deserialize(stored);
    rebase(p, v);  // the stored oids may be those of a database dumped elsewhere
    p.name = relation_name(p.oid);
    for (auto& l : p.leaves) l.relation = relation_name(l.relid);
    std::string def =
        pg_call([&] { return std::string(pg_get_querydef(static_cast<Query*>(stringToNode(tree.c_str())), false)); });
    std::string text = plan::serialize(p);
    if (text == stored && def == old_definition) continue;
    spi.exec_once("UPDATE ivm.views SET name = " + quote_literal(p.name) + ", definition = " + quote_literal(def) +
                  ", plan = " + quote_literal(text) + " WHERE viewid = " + oid_text(v));
    plan_cache().erase(v);
    changed = true;
  }
  if (changed) invalidate();
}

}  // namespace ivm::catalog

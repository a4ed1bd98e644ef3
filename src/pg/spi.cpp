// spi.cpp: SPI helpers.
#include "pg/spi.hpp"

extern "C" {
#include "utils/plancache.h"
}

#include <exception>
#include <unordered_map>

namespace ivm::pg {

namespace {

// Plans of generated statements, kept for the life of the backend.  The key
// is the text, with the row types of the registered relations it names: the
// text names every relation a statement reads, and PostgreSQL's plan cache
// revalidates after DDL, but not when a relation of the same name is
// registered with other columns (the groups an upsert returned are raw state
// rows on one path, finalized rows on another): a plan made for one row type
// must not read the other.
std::unordered_map<std::string, SPIPlanPtr>& plan_cache() {
  static std::unordered_map<std::string, SPIPlanPtr> cache;
  return cache;
}
constexpr std::size_t kMaxCachedPlans = 2000;

// shape_of: a row type's column names and types, as text (reads the
// descriptor only: no call that could raise an error).
std::string shape_of(TupleDesc desc) {
  std::string out;
  for (int a = 0; a < desc->natts; ++a) {
    Form_pg_attribute att = TupleDescAttr(desc, a);
    out += std::string(NameStr(att->attname)) + ":" + std::to_string(att->atttypid) + "." +
           std::to_string(att->atttypmod) + "." + std::to_string(att->attcollation) + ",";
  }
  return out;
}

void check(int rc, const char* what) {
  if (rc < 0)
    throw Error(ERRCODE_INTERNAL_ERROR, std::string("SPI failed in ") + what + ": " + SPI_result_code_string(rc));
}

}  // namespace

Spi::Spi() {
  pg_call([&] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    cxt_ = CurrentMemoryContext;
  });
}

Spi::~Spi() {
  // On the error path the transaction is being aborted and AtEOXact_SPI
  // cleans up; calling into SPI then could raise a second error.
  // Ending the stores releases temporary files of results that spilled to
  // disk (at commit, a file still open would be reported as leaked).
  if (std::uncaught_exceptions() == 0)
    pg_call([&] {
      for (Tuplestorestate* s : stores_) tuplestore_end(s);
      SPI_finish();
    });
}

uint64 Spi::exec(const std::string& sql) {
  if (fresh_plans_) return exec_once(sql);
  auto& cache = plan_cache();
  std::string key = sql;
  for (const auto& [name, n] : named_)
    if (sql.find(name) != std::string::npos) key += "\x1f" + name + "=" + n.shape;
  auto it = cache.find(key);
  SPIPlanPtr plan = it == cache.end() ? nullptr : it->second;
  if (!plan) {
    if (cache.size() >= kMaxCachedPlans) {
      for (auto& [text, p] : cache) pg_call([p = p] { SPI_freeplan(p); });
      cache.clear();
    }
    plan = pg_call([&] {
      SPIPlanPtr p = SPI_prepare(sql.c_str(), 0, nullptr);
      if (!p) elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
      SPI_keepplan(p);
      return p;
    });
    cache.emplace(key, plan);
  }
  int rc = pg_call([&] {
    return snapshot_ ? SPI_execute_snapshot(plan, nullptr, nullptr, snapshot_, InvalidSnapshot, false, true, 0)
                     : SPI_execute_plan(plan, nullptr, nullptr, false, 0);
  });
  check(rc, "execute");
  return SPI_processed;
}

uint64 Spi::exec_once(const std::string& sql) {
  int rc = pg_call([&] {
    if (!snapshot_) return SPI_execute(sql.c_str(), false, 0);
    SPIPlanPtr plan = SPI_prepare(sql.c_str(), 0, nullptr);
    if (!plan) elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
    int r = SPI_execute_snapshot(plan, nullptr, nullptr, snapshot_, InvalidSnapshot, false, true, 0);
    SPI_freeplan(plan);
    return r;
  });
  check(rc, "execute");
  return SPI_processed;
}

bool Spi::exec_into(const std::string& sql, DestReceiver* dest, bool (*accept)(TupleDesc, void*), void* arg) {
  if (snapshot_) return false;
  return pg_call([&] {
    SPIPlanPtr plan = SPI_prepare(sql.c_str(), 0, nullptr);
    if (!plan) elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
    List* sources = SPI_plan_get_plan_sources(plan);
    auto* source = list_length(sources) == 1 ? static_cast<CachedPlanSource*>(linitial(sources)) : nullptr;
    bool ok = source && source->resultDesc && accept(source->resultDesc, arg);
    if (ok) {
      SPIExecuteOptions options;
      memset(&options, 0, sizeof(options));
      options.dest = dest;
      int rc = SPI_execute_plan_extended(plan, &options);
      if (rc < 0) elog(ERROR, "SPI_execute_plan_extended failed: %s", SPI_result_code_string(rc));
    }
    SPI_freeplan(plan);
    return ok;
  });
}

uint64 Spi::rows() const { return SPI_processed; }

std::string Spi::text(uint64 row, int col) const {
  char* v = pg_call([&] { return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col); });
  return v ? std::string(v) : std::string();
}

bool Spi::is_null(uint64 row, int col) const {
  bool isnull = false;
  pg_call([&] { SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull); });
  return isnull;
}

bool Spi::boolean(uint64 row, int col) const {
  bool isnull = false;
  Datum d = pg_call([&] { return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull); });
  return !isnull && DatumGetBool(d);
}

std::int64_t Spi::int8(uint64 row, int col) const {
  bool isnull = false;
  Datum d = pg_call([&] { return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull); });
  return isnull ? 0 : DatumGetInt64(d);
}

int Spi::column(const char* name) const {
  return pg_call([&] { return SPI_fnumber(SPI_tuptable->tupdesc, name); });
}

Tuples Spi::result() const { return Tuples{SPI_tuptable->tupdesc, SPI_tuptable->vals, SPI_processed}; }

void Spi::capture(const std::string& name) { keep_rows(name, result()); }

void Spi::keep_rows(const std::string& name, const Tuples& t) {
  Tuplestorestate* store = nullptr;
  TupleDesc desc = nullptr;
  pg_call([&] {
    MemoryContext old = MemoryContextSwitchTo(cxt_);
    store = tuplestore_begin_heap(false, false, work_mem);
    desc = CreateTupleDescCopy(t.desc);
    for (uint64 i = 0; i < t.n; i++) tuplestore_puttuple(store, t.rows[i]);
    MemoryContextSwitchTo(old);
  });
  keep_store(name, store, desc);
}

void Spi::keep_store(const std::string& name, Tuplestorestate* store, TupleDesc desc) {
  stores_.push_back(store);
  register_store(name, store, desc);
}

void Spi::append_result(MemoryContext cxt, Tuplestorestate*& store, TupleDesc& desc) {
  pg_call([&] {
    SPITupleTable* tt = SPI_tuptable;
    uint64 n = SPI_processed;
    MemoryContext old = MemoryContextSwitchTo(cxt);
    if (!store) {
      store = tuplestore_begin_heap(false, false, work_mem);
      desc = CreateTupleDescCopy(tt->tupdesc);
    }
    for (uint64 i = 0; i < n; i++) tuplestore_puttuple(store, tt->vals[i]);
    MemoryContextSwitchTo(old);
  });
}

void Spi::register_store(const std::string& name, Tuplestorestate* store, TupleDesc desc) {
  pg_call([&] {
    SPI_unregister_relation(name.c_str());
    MemoryContext old = MemoryContextSwitchTo(cxt_);
    auto* enr = static_cast<EphemeralNamedRelation>(palloc0(sizeof(EphemeralNamedRelationData)));
    enr->md.name = pstrdup(name.c_str());
    enr->md.reliddesc = InvalidOid;
    enr->md.tupdesc = desc;
    enr->md.enrtype = ENR_NAMED_TUPLESTORE;
    enr->md.enrtuples = static_cast<double>(tuplestore_tuple_count(store));
    enr->reldata = store;
    MemoryContextSwitchTo(old);
    if (SPI_register_relation(enr) != SPI_OK_REL_REGISTER) elog(ERROR, "could not register relation %s", enr->md.name);
  });
  named_[name] = {store, desc, shape_of(desc)};
}

bool Spi::find_store(const std::string& name, Tuplestorestate*& store, TupleDesc& desc) const {
  auto it = named_.find(name);
  if (it == named_.end()) return false;
  store = it->second.store;
  desc = it->second.desc;
  return true;
}

void Spi::register_trigger_data(TriggerData* td) {
  int rc = pg_call([&] { return SPI_register_trigger_data(td); });
  check(rc, "register_trigger_data");
  TupleDesc desc = RelationGetDescr(td->tg_relation);
  if (td->tg_newtable) named_[td->tg_trigger->tgnewtable] = {td->tg_newtable, desc, shape_of(desc)};
  if (td->tg_oldtable) named_[td->tg_trigger->tgoldtable] = {td->tg_oldtable, desc, shape_of(desc)};
}

SnapshotScope::SnapshotScope(Spi& spi) : spi_(spi) {
  spi_.snapshot_ = pg_call([] { return RegisterSnapshot(GetTransactionSnapshot()); });
}

SnapshotScope::~SnapshotScope() {
  Snapshot s = spi_.snapshot_;
  spi_.snapshot_ = nullptr;
  if (std::uncaught_exceptions() == 0) pg_call([s] { UnregisterSnapshot(s); });
}

SnapshotPause::SnapshotPause(Spi& spi) : spi_(spi), saved_(spi.snapshot_) { spi_.snapshot_ = nullptr; }

SnapshotPause::~SnapshotPause() { spi_.snapshot_ = saved_; }

ScopedSetting::ScopedSetting(const char* name, const char* value) {
  level_ = pg_call([&] {
    int level = NewGUCNestLevel();
    (void)set_config_option(name, value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    return level;
  });
}

ScopedSetting::~ScopedSetting() {
  if (std::uncaught_exceptions() == 0) pg_call([l = level_] { AtEOXact_GUC(true, l); });
}

std::uint32_t relation_oid(const std::string& name) {
  return pg_call([&] {
    return RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(name.c_str())), NoLock, true);
  });
}

std::string quote_ident(const std::string& s) {
  return pg_call([&] { return quote_identifier(s.c_str()); });
}

std::string quote_literal(const std::string& s) {
  return pg_call([&] { return quote_literal_cstr(s.c_str()); });
}

}  // namespace ivm::pg

// exprs.cpp: a view's expressions evaluated below SQL (see exprs.hpp).
#include "apply/exprs.hpp"

#include "catalog/catalog.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "storage/proc.h"
#include "utils/datum.h"
}

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

namespace ivm::apply::exprs {

namespace {

struct Entry {
  MemoryContext cxt = nullptr;  // holds c; nullptr when c is
  Compiled* c = nullptr;        // nullptr: not evaluable below SQL
  std::uint64_t generation = 0;
  bool valid = true;
};

// Per view, per Kind.
using Key = std::pair<std::uint32_t, int>;
struct KeyHash {
  std::size_t operator()(const Key& k) const {
    return std::hash<std::uint64_t>()((std::uint64_t{k.first} << 8) | k.second);
  }
};
std::unordered_map<Key, Entry, KeyHash>& cache() {
  static std::unordered_map<Key, Entry, KeyHash> entries;
  return entries;
}
std::vector<MemoryContext>& retired() {
  static std::vector<MemoryContext> contexts;
  return contexts;
}
int in_use = 0;
bool watching = false;

// The invalidation callbacks run inside PostgreSQL (at any lock taken, any
// command boundary): they only mark entries, which are freed at a later
// lookup, when none is in use.
void on_relcache(Datum, Oid relid) {
  for (auto& [key, e] : cache()) {
    bool hit = relid == InvalidOid || key.first == relid;
    for (int i = 0; e.c && !hit && i < e.c->nleaves; ++i) hit = e.c->relids[i] == relid;
    if (hit) e.valid = false;
  }
}

// A function or type: the entries that use it (a hash of 0: all of them),
// as the plan cache does; an operator, operator class or schema: all.  An
// entry that could not be compiled is tried again after any change (its
// function may have become immutable).
void on_syscache(Datum, int cache_id, uint32 hash) {
  bool selective = hash != 0 && (cache_id == PROCOID || cache_id == TYPEOID);
  for (auto& [key, e] : cache()) {
    bool hit = !selective || !e.c;
    for (int i = 0; !hit && i < e.c->ndepends; ++i)
      hit = e.c->depend_cache[i] == cache_id && e.c->depend_hash[i] == hash;
    if (hit) e.valid = false;
  }
}

void watch() {
  if (watching) return;
  pg::pg_call([] {
    CacheRegisterRelcacheCallback(on_relcache, static_cast<Datum>(0));
    // What a planned expression depends on besides its relations, as the
    // plan cache sees it (plancache.c): functions (inlined SQL functions
    // included), operators, types, schemas, operator classes.
    for (int id : {PROCOID, OPEROID, TYPEOID, NAMESPACEOID, AMOPOPID})
      CacheRegisterSyscacheCallback(id, on_syscache, static_cast<Datum>(0));
  });
  watching = true;
}

void free_retired() {
  if (in_use > 0) return;
  for (MemoryContext cxt : retired()) pg::pg_call([cxt] { MemoryContextDelete(cxt); });
  retired().clear();
}

struct VarMap {
  const int* offset;
  int nleaves;
  bool bad;  // a Var that is not a plain column of a leaf
};

Node* remap_vars(Node* node, VarMap* map) {
  if (!node) return nullptr;
  if (IsA(node, Var)) {
    Var* v = static_cast<Var*>(copyObjectImpl(node));
    if (v->varlevelsup != 0 || v->varattno <= 0 || v->varno < 1 || static_cast<int>(v->varno) > map->nleaves) {
      map->bad = true;
      return reinterpret_cast<Node*>(v);
    }
    v->varattno = static_cast<AttrNumber>(v->varattno + map->offset[v->varno - 1]);
    v->varno = 1;
    v->varnosyn = 1;
    v->varattnosyn = v->varattno;
    return reinterpret_cast<Node*>(v);
  }
  return expression_tree_mutator(node, pg::fn_cast<pg::Mutator>(remap_vars), map);
}

// Input: what compile needs from the plan, as plain data.
struct Input {
  const char* sql;
  const Oid* relids;
  int nleaves;
  Oid view;  // InvalidOid: the outputs' types are not checked
  Oid view_oid;
  int noutputs;
  bool where;
  const int* on_nodes;  // join nodes with a condition, in the SELECT list's order
  int non;
  int njoins;
  const char* const* names;  // AggDeltaRows: the outputs' names; nullptr: ViewRows
};

// view_rows_desc: [__m,] __live, c0, c1, ... of the types in `types`.
TupleDesc view_rows_desc(TupleDesc types, bool with_m) {
  int first = with_m ? 2 : 1;
  TupleDesc d = CreateTemplateTupleDesc(types->natts + first);
  if (with_m) TupleDescInitEntry(d, 1, "__m", INT8OID, -1, 0);
  TupleDescInitEntry(d, static_cast<AttrNumber>(first), "__live", BOOLOID, -1, 0);
  for (int i = 0; i < types->natts; ++i) {
    Form_pg_attribute att = TupleDescAttr(types, i);
    char name[NAMEDATALEN];
    snprintf(name, sizeof(name), "c%d", i);
    auto a = static_cast<AttrNumber>(first + 1 + i);
    TupleDescInitEntry(d, a, name, att->atttypid, att->atttypmod, 0);
    TupleDescInitEntryCollation(d, a, att->attcollation);
  }
  return d;
}

// named_rows_desc: each type under its name, then __m.
TupleDesc named_rows_desc(TupleDesc types, const char* const* names) {
  TupleDesc d = CreateTemplateTupleDesc(types->natts + 1);
  for (int i = 0; i < types->natts; ++i) {
    Form_pg_attribute att = TupleDescAttr(types, i);
    TupleDescInitEntry(d, static_cast<AttrNumber>(i + 1), names[i], att->atttypid, att->atttypmod, 0);
    TupleDescInitEntryCollation(d, static_cast<AttrNumber>(i + 1), att->attcollation);
  }
  TupleDescInitEntry(d, static_cast<AttrNumber>(types->natts + 1), "__m", INT8OID, -1, 0);
  return d;
}

// compile: the Compiled of `in`, allocated in a new context under
// CacheMemoryContext (returned in *cxt), or nullptr.  PostgreSQL's terms.
Compiled* compile(const Input& in, MemoryContext* cxt) {
  elog(DEBUG1, "ivm: compiling the expressions of view %u", in.view_oid);
  MemoryContext work =
      AllocSetContextCreate(CurrentMemoryContext, "ivm expressions (compiling)", ALLOCSET_DEFAULT_SIZES);
  MemoryContext old = MemoryContextSwitchTo(work);
  List* raw = raw_parser(in.sql, RAW_PARSE_DEFAULT);
  Query* q = parse_analyze_fixedparams(linitial_node(RawStmt, raw), in.sql, nullptr, 0, nullptr);
  // Before anything is inlined: an inlined SQL function is a dependency too.
  List* relations = NIL;
  List* depends = NIL;
  bool row_security = false;
  extract_query_dependencies(reinterpret_cast<Node*>(q), &relations, &depends, &row_security);
  int nitems = in.noutputs + (in.where ? 1 : 0) + in.non;
  bool ok = q->commandType == CMD_SELECT && !q->hasSubLinks && !q->hasAggs && !q->hasWindowFuncs && !q->hasTargetSRFs &&
            list_length(q->rtable) == in.nleaves && list_length(q->targetList) == nitems;
  for (int i = 0; ok && i < in.nleaves; ++i) {
    RangeTblEntry* rte = rt_fetch(i + 1, q->rtable);
    ok = rte->rtekind == RTE_RELATION && rte->relid == in.relids[i];
  }
  Relation view = ok && OidIsValid(in.view) ? relation_open(in.view, AccessShareLock) : nullptr;
  ok = ok && (!view || RelationGetDescr(view)->natts == in.noutputs);
  TupleDesc types = ok ? CreateTemplateTupleDesc(std::max(in.noutputs, 1)) : nullptr;
  Bitmapset** used = static_cast<Bitmapset**>(palloc0(sizeof(Bitmapset*) * static_cast<std::size_t>(in.nleaves)));
  // The row: each leaf's columns (dropped ones too) after the previous leaf's.
  int* offset = static_cast<int*>(palloc0(sizeof(int) * static_cast<std::size_t>(in.nleaves)));
  int width = 0;
  for (int i = 0; ok && i < in.nleaves; ++i) {
    offset[i] = width;
    Relation rel = relation_open(in.relids[i], AccessShareLock);
    width += RelationGetDescr(rel)->natts;
    relation_close(rel, NoLock);
  }
  TupleDesc row = ok ? CreateTemplateTupleDesc(width) : nullptr;
  for (int i = 0; ok && i < in.nleaves; ++i) {
    Relation rel = relation_open(in.relids[i], AccessShareLock);
    TupleDesc d = RelationGetDescr(rel);
    for (int a = 1; a <= d->natts; ++a) TupleDescCopyEntry(row, static_cast<AttrNumber>(offset[i] + a), d, a);
    relation_close(rel, NoLock);
  }
  Expr** items = static_cast<Expr**>(palloc0(sizeof(Expr*) * static_cast<std::size_t>(nitems)));
  VarMap map{offset, in.nleaves, false};
  ListCell* lc;
  int k = 0;
  foreach (lc, q->targetList) {
    if (!ok) break;
    Node* x = reinterpret_cast<Node*>(lfirst_node(TargetEntry, lc)->expr);
    for (int i = 0; i < in.nleaves; ++i) pull_varattnos(x, static_cast<Index>(i + 1), &used[i]);
    x = remap_vars(x, &map);
    // A volatile function would run once per evaluation here and once per
    // row read there: the statements stay the only ones to call it.
    ok = !map.bad && !contain_volatile_functions(x);
    if (!ok) break;
    if (k < in.noutputs) {
      Oid type = exprType(x);
      ok = !view || TupleDescAttr(RelationGetDescr(view), k)->atttypid == type;
      char name[NAMEDATALEN];
      snprintf(name, sizeof(name), "o%d", k);
      TupleDescInitEntry(types, static_cast<AttrNumber>(k + 1), name, type, exprTypmod(x), 0);
      TupleDescInitEntryCollation(types, static_cast<AttrNumber>(k + 1), exprCollation(x));
    } else {
      ok = exprType(x) == BOOLOID;
    }
    items[k++] = expression_planner(reinterpret_cast<Expr*>(x));
  }
  if (view) relation_close(view, NoLock);
  MemoryContextSwitchTo(old);
  if (!ok) {
    MemoryContextDelete(work);
    return nullptr;
  }
  *cxt = AllocSetContextCreate(CacheMemoryContext, "ivm expressions", ALLOCSET_SMALL_SIZES);
  MemoryContextSwitchTo(*cxt);
  auto* c = static_cast<Compiled*>(palloc0(sizeof(Compiled)));
  c->row = CreateTupleDescCopy(row);
  c->nleaves = in.nleaves;
  c->relids = static_cast<Oid*>(palloc(sizeof(Oid) * static_cast<std::size_t>(in.nleaves)));
  c->offset = static_cast<int*>(palloc(sizeof(int) * static_cast<std::size_t>(in.nleaves)));
  for (int i = 0; i < in.nleaves; ++i) {
    c->relids[i] = in.relids[i];
    c->offset[i] = offset[i];
  }
  c->used = static_cast<AttrNumber**>(palloc0(sizeof(AttrNumber*) * static_cast<std::size_t>(in.nleaves)));
  c->nused = static_cast<int*>(palloc0(sizeof(int) * static_cast<std::size_t>(in.nleaves)));
  for (int i = 0; i < in.nleaves; ++i) {
    c->used[i] = static_cast<AttrNumber*>(palloc(sizeof(AttrNumber) * (bms_num_members(used[i]) + 1)));
    int m = -1;
    while ((m = bms_next_member(used[i], m)) >= 0)
      c->used[i][c->nused[i]++] = static_cast<AttrNumber>(m + FirstLowInvalidHeapAttributeNumber);
  }
  c->types = CreateTupleDescCopy(types);
  c->ndepends = list_length(depends);
  c->depend_cache = static_cast<int*>(palloc(sizeof(int) * static_cast<std::size_t>(c->ndepends + 1)));
  c->depend_hash = static_cast<uint32*>(palloc(sizeof(uint32) * static_cast<std::size_t>(c->ndepends + 1)));
  int d = 0;
  foreach (lc, depends) {
    auto* item = static_cast<PlanInvalItem*>(lfirst(lc));
    c->depend_cache[d] = item->cacheId;
    c->depend_hash[d++] = item->hashValue;
  }
  if (in.names) {
    c->result[1] = named_rows_desc(c->types, in.names);
  } else {
    c->result[0] = view_rows_desc(c->types, false);
    c->result[1] = view_rows_desc(c->types, true);
  }
  c->noutputs = in.noutputs;
  c->outputs = static_cast<Expr**>(palloc(sizeof(Expr*) * static_cast<std::size_t>(in.noutputs)));
  for (int i = 0; i < in.noutputs; ++i) c->outputs[i] = static_cast<Expr*>(copyObjectImpl(items[i]));
  if (in.where) c->where = static_cast<Expr*>(copyObjectImpl(items[in.noutputs]));
  c->on = static_cast<Expr**>(palloc0(sizeof(Expr*) * static_cast<std::size_t>(std::max(in.njoins, 1))));
  for (int j = 0; j < in.non; ++j)
    c->on[in.on_nodes[j]] = static_cast<Expr*>(copyObjectImpl(items[in.noutputs + (in.where ? 1 : 0) + j]));
  MemoryContextSwitchTo(old);
  MemoryContextDelete(work);
  return c;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

const Compiled* compiled(const plan::ViewPlan& p, Kind kind) {
  watch();
  std::uint64_t generation = catalog::catalog_generation();
  auto& entries = cache();
  Key key{p.oid, static_cast<int>(kind)};
  auto it = entries.find(key);
  if (it != entries.end() && it->second.valid && it->second.generation == generation) return it->second.c;
  if (it != entries.end()) {
    if (it->second.cxt) retired().push_back(it->second.cxt);
    entries.erase(it);
  }
  free_retired();

  bool rows = kind == Kind::ViewRows;
  std::vector<std::string> items, from, names;
  if (rows) {
    items = p.outputs;
  } else {
    for (const auto& item : plan::agg_delta_items(p)) {
      names.push_back(item.first);
      items.push_back(item.second);
    }
    if (items.empty()) return nullptr;
  }
  std::vector<const char*> name_ptrs;
  for (const auto& n : names) name_ptrs.push_back(n.c_str());
  std::size_t noutputs = items.size();
  if (!p.where.empty()) items.push_back("(" + p.where + ")");
  std::vector<int> on_nodes;
  for (std::size_t j = 0; j < p.joins.size() && rows; ++j) {
    if (p.joins[j].kind == plan::JoinKind::Leaf || p.joins[j].on.empty()) continue;
    items.push_back("(" + p.joins[j].on + ")");
    on_nodes.push_back(static_cast<int>(j));
  }
  std::vector<Oid> relids;
  for (const auto& l : p.leaves) {
    from.push_back(l.relation + " " + l.alias);
    relids.push_back(l.relid);
  }
  std::string sql = "SELECT " + joined(items) + " FROM " + joined(from);
  Input in{sql.c_str(),
           relids.data(),
           static_cast<int>(relids.size()),
           rows ? p.oid : InvalidOid,
           p.oid,
           static_cast<int>(noutputs),
           !p.where.empty(),
           on_nodes.data(),
           static_cast<int>(on_nodes.size()),
           static_cast<int>(p.joins.size()),
           rows ? nullptr : name_ptrs.data()};
  Entry e;
  e.generation = generation;
  {
    // Resolved as the statements resolve it (spi.hpp).
    pg::PinnedSearchPath pinned;
    MemoryContext cxt = nullptr;
    e.c = pg::pg_call([&] { return compile(in, &cxt); });
    e.cxt = cxt;
  }
  // An invalidation while compiling (a lock taken) may already have marked
  // the relations: the entry is then compiled again on next use.
  entries[key] = e;
  return e.c;
}

InUse::InUse() { ++in_use; }
InUse::~InUse() { --in_use; }

void begin(Evaluator& e, const Compiled* c, int njoins) {
  e.c = c;
  e.econtext = CreateStandaloneExprContext();
  e.row = MakeSingleTupleTableSlot(c->row, &TTSOpsVirtual);
  if (c->states_for != MyProc->lxid) {
    MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
    c->states_for = InvalidLocalTransactionId;  // until every state is built
    c->output_states = static_cast<ExprState**>(palloc(sizeof(ExprState*) * static_cast<std::size_t>(c->noutputs)));
    for (int i = 0; i < c->noutputs; ++i) c->output_states[i] = ExecInitExpr(c->outputs[i], nullptr);
    c->where_state = c->where ? ExecInitExpr(c->where, nullptr) : nullptr;
    c->on_states =
        static_cast<ExprState**>(palloc0(sizeof(ExprState*) * static_cast<std::size_t>(std::max(njoins, 1))));
    for (int j = 0; j < njoins; ++j)
      if (c->on[j]) c->on_states[j] = ExecInitExpr(c->on[j], nullptr);
    MemoryContextSwitchTo(old);
    c->states_for = MyProc->lxid;
  }
  e.outputs = c->output_states;
  e.where = c->where_state;
  e.on = c->on_states;
}

void end(Evaluator& e) {
  FreeExprContext(e.econtext, true);
  ExecDropSingleTupleTableSlot(e.row);
}

void clear_row(Evaluator& e) {
  ExecClearTuple(e.row);
  for (int a = 0; a < e.c->row->natts; ++a) {
    e.row->tts_values[a] = static_cast<Datum>(0);
    e.row->tts_isnull[a] = true;
  }
  ExecStoreVirtualTuple(e.row);
}

bool holds(Evaluator& e, ExprState* state) {
  if (!state) return true;
  ResetExprContext(e.econtext);
  e.econtext->ecxt_scantuple = e.row;
  bool isnull = false;
  Datum v = ExecEvalExprSwitchContext(state, e.econtext, &isnull);
  return !isnull && DatumGetBool(v);
}

void evaluate(Evaluator& e, Datum* values, bool* nulls, MemoryContext into) {
  ResetExprContext(e.econtext);
  e.econtext->ecxt_scantuple = e.row;
  for (int i = 0; i < e.c->noutputs; ++i) {
    Datum v = ExecEvalExprSwitchContext(e.outputs[i], e.econtext, &nulls[i]);
    Form_pg_attribute att = TupleDescAttr(e.c->types, i);
    MemoryContext old = MemoryContextSwitchTo(into);
    values[i] = nulls[i] ? static_cast<Datum>(0) : datumCopy(v, att->attbyval, att->attlen);
    MemoryContextSwitchTo(old);
  }
}

}  // namespace ivm::apply::exprs

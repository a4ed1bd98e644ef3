// fold.cpp: per-group deltas summed below SQL (see fold.hpp).
#include "apply/fold.hpp"
#include "apply/rows.hpp"

extern "C" {
#include "utils/numeric.h"
}

#include <vector>

namespace ivm::apply {

namespace {

using plan::AggKind;

// Held: one value of a MIN/MAX argument with its multiplicity.
struct Held {
  Datum v;
  int64 m;
};

// Agg: one aggregate's columns (raw: in the change's rows, 0 for none;
// state: in the state table) and its sums over the current group.
struct Agg {
  AggKind kind;
  int v, f;            // raw columns: argument, FILTER
  int a, n, x, d, dc;  // state columns
  bool numeric;        // SUM/AVG kept as numeric (else int8)
  FmgrInfo cmp;        // MIN/MAX: the btree comparison of the argument's type
  Oid collation;       // MIN/MAX: the argument's
  // Sums over the current group.
  int128 a_int, n_int;
  bool a_seen;  // SUM/AVG: some non-NULL value was added (the sum is not NULL)
  Datum a_num;  // SUM/AVG as numeric
  Held* held;   // MIN/MAX: the group's values
  int nheld, cap;
};

// Spec: what the fold needs of the plan, in plain C terms (it runs under
// pg_call, where no C++ object may live).
struct Spec {
  Oid state = InvalidOid;
  int ngroups = 0;
  int naggs = 0;
  const AggKind* kinds = nullptr;
  MemoryContext keep = nullptr;
};

using rows::attno;
using rows::type_of;

// int8_of: a sum as int8, or the error casting the SQL sum (numeric) gives.
Datum int8_of(int128 v) {
  if (v < PG_INT64_MIN || v > PG_INT64_MAX)
    ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE), errmsg("bigint out of range")));
  return Int64GetDatum(static_cast<int64>(v));
}

int compare_held(const void* x, const void* y, void* arg) {
  auto* g = static_cast<Agg*>(arg);
  return DatumGetInt32(
      FunctionCall2Coll(&g->cmp, g->collation, static_cast<const Held*>(x)->v, static_cast<const Held*>(y)->v));
}

// setup: per aggregate its columns and functions; false when a column is not
// of the type the state holds (the statement would cast it), or a type lacks
// an ordering.
bool setup(const Spec& s, TupleDesc raw, TupleDesc state, Agg* aggs) {
  for (int i = 0; i < s.naggs; ++i) {
    Agg& g = aggs[i];
    g.kind = s.kinds[i];
    g.v = attno(raw, "v", i);
    g.f = attno(raw, "f", i);
    g.a = attno(state, "a", i);
    g.n = attno(state, "n", i);
    g.x = attno(state, "x", i);
    g.d = attno(state, "d", i);
    g.dc = attno(state, "dc", i);
    if (g.a == 0 || (g.f > 0 && type_of(raw, g.f) != BOOLOID)) return false;
    Oid t = type_of(state, g.a);
    switch (g.kind) {
      case AggKind::CountStar:
        if (t != INT8OID) return false;
        break;
      case AggKind::Count:
        if (t != INT8OID || g.v == 0) return false;
        break;
      case AggKind::BoolAnd:
      case AggKind::BoolOr:
        if (t != INT8OID || g.v == 0 || g.n == 0 || type_of(raw, g.v) != BOOLOID) return false;
        break;
      case AggKind::Sum:
      case AggKind::Avg:
        if (g.v == 0 || g.n == 0 || type_of(raw, g.v) != t || (t != INT8OID && t != NUMERICOID)) return false;
        g.numeric = t == NUMERICOID;
        break;
      case AggKind::Min:
      case AggKind::Max: {
        if (g.v == 0 || g.x == 0 || g.d == 0 || g.dc == 0 || type_of(raw, g.v) != t) return false;
        TypeCacheEntry* tc = lookup_type_cache(t, TYPECACHE_CMP_PROC_FINFO);
        if (!OidIsValid(tc->cmp_proc)) return false;
        fmgr_info_copy(&g.cmp, &tc->cmp_proc_finfo, CurrentMemoryContext);
        g.collation = TupleDescAttr(raw, g.v - 1)->attcollation;
        g.cap = 8;
        g.held = static_cast<Held*>(palloc(sizeof(Held) * static_cast<std::size_t>(g.cap)));
        break;
      }
      default: return false;
    }
  }
  return true;
}

void reset(Agg& g) {
  g.a_int = g.n_int = 0;
  g.a_seen = false;
  g.a_num = 0;
  g.nheld = 0;
}

// add: one row's argument `v` (`isnull`) with multiplicity m, the FILTER
// passed, into the group's sums (the aggregates of sql_agg_deltas).
void add(Agg& g, Datum v, bool isnull, int64 m, MemoryContext group_cxt) {
  switch (g.kind) {
    case AggKind::CountStar: g.a_int += m; return;
    case AggKind::Count:
      if (!isnull) g.a_int += m;
      return;
    case AggKind::BoolAnd:
    case AggKind::BoolOr:
      if (isnull) return;
      g.n_int += m;
      if (DatumGetBool(v)) g.a_int += m;
      return;
    case AggKind::Sum:
    case AggKind::Avg: {
      if (isnull) return;
      g.n_int += m;
      if (!g.numeric) {
        g.a_int += static_cast<int128>(DatumGetInt64(v)) * m;
      } else {
        MemoryContext old = MemoryContextSwitchTo(group_cxt);
        Datum term = m == 1    ? v
                     : m == -1 ? DirectFunctionCall1(numeric_uminus, v)
                               : DirectFunctionCall2(numeric_mul, v, NumericGetDatum(int64_to_numeric(m)));
        g.a_num = g.a_seen ? DirectFunctionCall2(numeric_add, g.a_num, term) : term;
        MemoryContextSwitchTo(old);
      }
      g.a_seen = true;
      return;
    }
    case AggKind::Min:
    case AggKind::Max:
      if (isnull) return;
      if (g.nheld == g.cap) {
        g.cap *= 2;
        g.held = static_cast<Held*>(repalloc(g.held, sizeof(Held) * static_cast<std::size_t>(g.cap)));
      }
      g.held[g.nheld++] = Held{v, m};
      return;
    default: return;
  }
}

// finish: the group's delta columns of aggregate g into values/nulls (state
// columns); returns whether an extreme was removed (the group's __dirty).
bool finish(Agg& g, Datum* values, bool* nulls) {
  auto put = [&](int att, Datum v) {
    values[att - 1] = v;
    nulls[att - 1] = false;
  };
  switch (g.kind) {
    case AggKind::CountStar:
    case AggKind::Count: put(g.a, int8_of(g.a_int)); return false;
    case AggKind::BoolAnd:
    case AggKind::BoolOr:
      put(g.a, int8_of(g.a_int));
      put(g.n, int8_of(g.n_int));
      return false;
    case AggKind::Sum:
    case AggKind::Avg:
      if (g.a_seen) put(g.a, g.numeric ? g.a_num : int8_of(g.a_int));
      put(g.n, int8_of(g.n_int));
      return false;
    case AggKind::Min:
    case AggKind::Max: {
      // Net count per distinct value (an UPDATE that keeps the value removes
      // nothing), then the extreme among the added values and among the
      // removed ones, each with its net count.
      if (g.nheld > 1) qsort_arg(g.held, static_cast<std::size_t>(g.nheld), sizeof(Held), compare_held, &g);
      bool is_min = g.kind == AggKind::Min;
      bool have_ins = false, have_del = false;
      Datum ins = 0, del = 0;
      int128 insc = 0, delc = 0;
      for (int k = 0; k < g.nheld;) {
        int128 s = 0;
        int e = k;
        for (; e < g.nheld && compare_held(&g.held[k], &g.held[e], &g) == 0; ++e) s += g.held[e].m;
        // Sorted ascending: MIN takes the first value of each sign, MAX the last.
        if (s > 0 && (!have_ins || !is_min)) {
          have_ins = true;
          ins = g.held[k].v;
          insc = s;
        } else if (s < 0 && (!have_del || !is_min)) {
          have_del = true;
          del = g.held[k].v;
          delc = -s;
        }
        k = e;
      }
      if (have_ins) {
        put(g.a, ins);
        put(g.x, int8_of(insc));
      }
      if (have_del) {
        put(g.d, del);
        put(g.dc, int8_of(delc));
      }
      return have_del;
    }
    default: return false;
  }
}

struct Outcome {
  bool done = false;
  pg::Tuples d;
};

// fold_rows: the whole fold, in PostgreSQL's terms (under pg_call): the `n`
// rows `raw` (row type `rd`, sorted by group) summed per group.
Outcome fold_rows(const Spec& s, TupleDesc rd, HeapTuple* raw, uint64 n) {
  Outcome out;
  Relation rel = table_open(s.state, AccessShareLock);
  MemoryContext old = MemoryContextSwitchTo(s.keep);
  TupleDesc sd = CreateTupleDescCopy(RelationGetDescr(rel));
  MemoryContextSwitchTo(old);
  table_close(rel, NoLock);
  int natts = sd->natts;
  int cnt = attno(sd, "__cnt"), dirty = attno(sd, "__dirty"), mult = attno(rd, "__m");
  bool ok = cnt > 0 && dirty > 0 && mult > 0 && type_of(sd, cnt) == INT8OID && type_of(sd, dirty) == BOOLOID &&
            type_of(rd, mult) == INT8OID;
  // The groups: the same type in the change's rows and the state, ordered.
  auto* graw = static_cast<int*>(palloc0(sizeof(int) * static_cast<std::size_t>(s.ngroups + 1)));
  auto* gstate = static_cast<int*>(palloc0(sizeof(int) * static_cast<std::size_t>(s.ngroups + 1)));
  auto* gcmp = static_cast<FmgrInfo*>(palloc0(sizeof(FmgrInfo) * static_cast<std::size_t>(s.ngroups + 1)));
  for (int j = 0; j < s.ngroups && ok; ++j) {
    graw[j] = attno(rd, "g", j);
    gstate[j] = attno(sd, "g", j);
    ok = graw[j] > 0 && gstate[j] > 0 && type_of(rd, graw[j]) == type_of(sd, gstate[j]);
    if (!ok) break;
    TypeCacheEntry* tc = lookup_type_cache(type_of(rd, graw[j]), TYPECACHE_CMP_PROC_FINFO);
    ok = OidIsValid(tc->cmp_proc);
    if (ok) fmgr_info_copy(&gcmp[j], &tc->cmp_proc_finfo, CurrentMemoryContext);
  }
  auto* aggs = static_cast<Agg*>(palloc0(sizeof(Agg) * static_cast<std::size_t>(s.naggs + 1)));
  ok = ok && setup(s, rd, sd, aggs);
  if (!ok) return out;

  auto* rv = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<std::size_t>(rd->natts)));
  auto* rn = static_cast<bool*>(palloc(sizeof(bool) * static_cast<std::size_t>(rd->natts)));
  auto* gv = static_cast<Datum*>(palloc0(sizeof(Datum) * static_cast<std::size_t>(s.ngroups + 1)));
  auto* gn = static_cast<bool*>(palloc0(sizeof(bool) * static_cast<std::size_t>(s.ngroups + 1)));
  auto* values = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<std::size_t>(natts)));
  auto* nulls = static_cast<bool*>(palloc(sizeof(bool) * static_cast<std::size_t>(natts)));
  old = MemoryContextSwitchTo(s.keep);
  out.d.desc = sd;
  out.d.rows = static_cast<HeapTuple*>(palloc(sizeof(HeapTuple) * static_cast<std::size_t>(n > 0 ? n : 1)));
  MemoryContextSwitchTo(old);
  MemoryContext group_cxt = AllocSetContextCreate(CurrentMemoryContext, "ivm delta fold", ALLOCSET_DEFAULT_SIZES);
  int128 count = 0;

  // same_group: whether the row in rv/rn is of the group in gv/gn (NULL
  // groups are one group, as in GROUP BY).
  auto same_group = [&]() {
    for (int j = 0; j < s.ngroups; ++j) {
      bool isnull = rn[graw[j] - 1];
      if (isnull != gn[j]) return false;
      if (!isnull && DatumGetInt32(FunctionCall2Coll(&gcmp[j], TupleDescAttr(rd, graw[j] - 1)->attcollation, gv[j],
                                                     rv[graw[j] - 1])) != 0)
        return false;
    }
    return true;
  };
  auto flush = [&]() {
    for (int i = 0; i < natts; ++i) {
      values[i] = 0;
      nulls[i] = true;
    }
    for (int j = 0; j < s.ngroups; ++j) {
      values[gstate[j] - 1] = gv[j];
      nulls[gstate[j] - 1] = gn[j];
    }
    values[cnt - 1] = int8_of(count);
    nulls[cnt - 1] = false;
    bool removed = false;
    for (int i = 0; i < s.naggs; ++i) removed = finish(aggs[i], values, nulls) || removed;
    values[dirty - 1] = BoolGetDatum(removed);
    nulls[dirty - 1] = false;
    MemoryContext o = MemoryContextSwitchTo(s.keep);
    out.d.rows[out.d.n++] = heap_form_tuple(sd, values, nulls);
    MemoryContextSwitchTo(o);
    MemoryContextReset(group_cxt);
  };
  for (uint64 r = 0; r < n; ++r) {
    heap_deform_tuple(raw[r], rd, rv, rn);
    if (r == 0 || !same_group()) {
      if (r > 0) flush();
      for (int j = 0; j < s.ngroups; ++j) {
        gv[j] = rv[graw[j] - 1];
        gn[j] = rn[graw[j] - 1];
      }
      count = 0;
      for (int i = 0; i < s.naggs; ++i) reset(aggs[i]);
    }
    int64 m = rn[mult - 1] ? 0 : DatumGetInt64(rv[mult - 1]);
    count += m;
    for (int i = 0; i < s.naggs; ++i) {
      Agg& g = aggs[i];
      if (g.f > 0 && (rn[g.f - 1] || !DatumGetBool(rv[g.f - 1]))) continue;
      add(g, g.v > 0 ? rv[g.v - 1] : 0, g.v > 0 ? rn[g.v - 1] : false, m, group_cxt);
    }
  }
  if (n > 0) flush();
  MemoryContextDelete(group_cxt);
  out.done = true;
  return out;
}

}  // namespace

std::optional<pg::Tuples> fold_deltas(pg::Spi& spi, const plan::ViewPlan& p, const pg::Tuples& rows) {
  Oid state = pg::relation_oid(p.state);
  if (!OidIsValid(state)) return std::nullopt;
  std::vector<AggKind> kinds;
  for (const plan::Aggregate& ag : p.aggs) kinds.push_back(ag.kind);
  Spec s;
  s.state = state;
  s.ngroups = static_cast<int>(p.groups.size());
  s.naggs = static_cast<int>(p.aggs.size());
  s.kinds = kinds.data();
  s.keep = spi.context();
  Outcome o = pg::pg_call([&] { return fold_rows(s, rows.desc, rows.rows, rows.n); });
  if (!o.done) return std::nullopt;
  return o.d;
}

}  // namespace ivm::apply

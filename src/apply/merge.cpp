// merge.cpp: an aggregate view's state merged row by row (see merge.hpp).
#include "apply/merge.hpp"
#include "apply/rows.hpp"

extern "C" {
#include "access/tableam.h"
#include "utils/acl.h"
}

#include <string>
#include <vector>

namespace ivm::apply {

namespace {

using plan::AggKind;

// V: a value that may be NULL.
struct V {
  Datum v = 0;
  bool null = true;
};

V value(Datum v) { return V{v, false}; }

// The strict int8 arithmetic of the statement (int8pl / int8mi: their
// overflow errors too).
V add8(V x, V y) { return x.null || y.null ? V{} : value(DirectFunctionCall2(int8pl, x.v, y.v)); }
V sub8(V x, V y) { return x.null || y.null ? V{} : value(DirectFunctionCall2(int8mi, x.v, y.v)); }
bool positive(V x) { return !x.null && DatumGetInt64(x.v) > 0; }

// Agg: one aggregate's state columns (attribute numbers of the state table,
// which the deltas' columns share; 0: none) and the functions merging them.
struct Agg {
  AggKind kind;
  bool interval_avg;
  int a, n, x, d, dc;
  FmgrInfo plus;  // Sum, Avg: the state type's `+`
  FmgrInfo cmp;   // Min, Max: the btree comparison of the value's type
  Oid collation;  // Min, Max: the state column's
  Oid state_type;
  Oid final_type;
};

// Spec: what the merge needs of the plan, in plain C terms (it runs under
// pg_call, where no C++ object may live).
struct Spec {
  Oid state = InvalidOid;
  int ngroups = 0;
  int naggs = 0;
  const AggKind* kinds = nullptr;
  const char* interval_avg = nullptr;  // per aggregate: AVG(interval)
  int ncols = 0;
  const int* column = nullptr;  // per view column: group j as -1 - j, aggregate i as i
  MemoryContext keep = nullptr;
};

using rows::attno;
using rows::type_of;

// setup_aggs: per aggregate its columns and functions; false when the state
// table is not what the plan says, or a type lacks what the merge calls.
bool setup_aggs(const Spec& s, TupleDesc state, Agg* aggs) {
  for (int i = 0; i < s.naggs; ++i) {
    Agg& g = aggs[i];
    g.kind = s.kinds[i];
    g.interval_avg = s.interval_avg[i] != 0;
    g.a = attno(state, "a", i);
    g.n = attno(state, "n", i);
    g.x = attno(state, "x", i);
    g.d = attno(state, "d", i);
    g.dc = attno(state, "dc", i);
    if (g.a == 0) return false;
    Oid t = type_of(state, g.a);
    g.state_type = g.final_type = t;
    switch (g.kind) {
      case AggKind::CountStar:
      case AggKind::Count:
        if (t != INT8OID) return false;
        break;
      case AggKind::BoolAnd:
      case AggKind::BoolOr:
        if (t != INT8OID || g.n == 0) return false;
        g.final_type = BOOLOID;
        break;
      case AggKind::Sum:
      case AggKind::Avg: {
        if (g.n == 0) return false;
        if (g.kind == AggKind::Avg) {
          if (t == INTERVALOID && g.interval_avg)
            g.final_type = INTERVALOID;
          else if ((t == INT8OID || t == NUMERICOID) && !g.interval_avg)
            g.final_type = NUMERICOID;
          else
            return false;
        }
        // `s.a + EXCLUDED.a` with search_path pg_catalog, pg_temp.
        Oid op = OpernameGetOprid(list_make2(makeString(pstrdup("pg_catalog")), makeString(pstrdup("+"))), t, t);
        if (!OidIsValid(op)) return false;
        fmgr_info(get_opcode(op), &g.plus);
        break;
      }
      case AggKind::Min:
      case AggKind::Max: {
        if (g.x == 0 || g.d == 0 || g.dc == 0) return false;
        TypeCacheEntry* tc = lookup_type_cache(t, TYPECACHE_CMP_PROC_FINFO);
        if (!OidIsValid(tc->cmp_proc)) return false;
        fmgr_info_copy(&g.cmp, &tc->cmp_proc_finfo, CurrentMemoryContext);
        g.collation = TupleDescAttr(state, g.a - 1)->attcollation;
        break;
      }
      default: return false;
    }
  }
  return true;
}

int compare(Agg& g, Datum x, Datum y) { return DatumGetInt32(FunctionCall2Coll(&g.cmp, g.collation, x, y)); }

// merge_agg: the ON CONFLICT branch for one aggregate (plan::sql_agg_upsert:
// the SET list, clause by clause), on the state row's values sv/sn (updated
// in place) and the delta's ev/en.  Returns whether the group lost its
// extreme (it must be recomputed).
bool merge_agg(Agg& g, Datum* sv, bool* sn, const Datum* ev, const bool* en) {
  auto get = [](const Datum* v, const bool* n, int att) { return att == 0 ? V{} : V{v[att - 1], n[att - 1]}; };
  auto set = [&](int att, V x) {
    sv[att - 1] = x.v;
    sn[att - 1] = x.null;
  };
  V a = get(sv, sn, g.a), ea = get(ev, en, g.a);
  switch (g.kind) {
    case AggKind::CountStar:
    case AggKind::Count: set(g.a, add8(a, ea)); return false;
    case AggKind::BoolAnd:
    case AggKind::BoolOr:
      set(g.a, add8(a, ea));
      set(g.n, add8(get(sv, sn, g.n), get(ev, en, g.n)));
      return false;
    case AggKind::Sum:
    case AggKind::Avg: {
      V n = add8(get(sv, sn, g.n), get(ev, en, g.n));
      set(g.n, n);
      // CASE WHEN n = 0 THEN NULL ELSE coalesce(s.a + e.a, s.a, e.a) END
      if (!n.null && DatumGetInt64(n.v) == 0)
        set(g.a, V{});
      else if (!a.null && !ea.null)
        set(g.a, value(FunctionCall2(&g.plus, a.v, ea.v)));
      else
        set(g.a, a.null ? ea : a);
      return false;
    }
    case AggKind::Min:
    case AggKind::Max: {
      bool is_min = g.kind == AggKind::Min;
      auto beyond = [&](Datum x, Datum y) { return is_min ? compare(g, x, y) < 0 : compare(g, x, y) > 0; };
      V x = get(sv, sn, g.x), d = get(ev, en, g.d), dc = get(ev, en, g.dc), ic = get(ev, en, g.x);
      V i = ea;
      // The removed extreme reaches the old one, and all its rows go (or
      // their number is not known).
      bool lost = !d.null &&
                  (a.null || beyond(d.v, a.v) ||
                   (compare(g, d.v, a.v) == 0 && (x.null || (!dc.null && DatumGetInt64(x.v) <= DatumGetInt64(dc.v)))));
      // A value added beyond the old extreme is the new one.
      bool further = !i.null && !a.null && beyond(i.v, a.v);
      V na, nx;
      if (further) {
        na = i;
        nx = ic;
      } else if (lost) {
        na = V{};
        nx = V{};
      } else {
        na = a.null ? i : a;
        if (a.null)
          nx = ic;
        else
          nx = add8(sub8(x, !d.null && compare(g, d.v, a.v) == 0 ? dc : value(Int64GetDatum(0))),
                    !i.null && compare(g, i.v, a.v) == 0 ? ic : value(Int64GetDatum(0)));
      }
      set(g.a, na);
      set(g.x, nx);
      set(g.d, V{});
      set(g.dc, V{});
      return lost && !further;
    }
    default: return false;
  }
}

// finalize: the aggregate's value from its merged state (plan's finalize()).
V finalize(const Agg& g, const Datum* sv, const bool* sn) {
  V a{sv[g.a - 1], sn[g.a - 1]};
  V n = g.n ? V{sv[g.n - 1], sn[g.n - 1]} : V{};
  switch (g.kind) {
    case AggKind::Sum: return positive(n) ? a : V{};
    case AggKind::Avg:
      if (!positive(n) || a.null) return V{};
      if (g.interval_avg)
        return value(DirectFunctionCall2(interval_div, a.v, Float8GetDatum(static_cast<double>(DatumGetInt64(n.v)))));
      // a::numeric / n::numeric
      return value(DirectFunctionCall2(numeric_div,
                                       g.state_type == INT8OID ? DirectFunctionCall1(int8_numeric, a.v) : a.v,
                                       DirectFunctionCall1(int8_numeric, n.v)));
    case AggKind::BoolAnd:
      return positive(n) && !a.null ? value(BoolGetDatum(DatumGetInt64(a.v) == DatumGetInt64(n.v))) : V{};
    case AggKind::BoolOr: return positive(n) && !a.null ? value(BoolGetDatum(DatumGetInt64(a.v) > 0)) : V{};
    default: return a;
  }
}

struct Outcome {
  bool done = false;
  Merged m;
};

// empty_group: into `fresh`, the state row of the group of the delta in
// ev/en that holds no rows: no count, sums over no values, no extremes.
void empty_group(const Spec& s, const Agg* aggs, TupleDesc sd, const int* from, const Datum* ev, const bool* en,
                 const AttrNumber* gatt, int cnt, int dirty, TupleTableSlot* fresh) {
  ExecClearTuple(fresh);
  for (int i = 0; i < sd->natts; ++i) {
    fresh->tts_values[i] = 0;
    fresh->tts_isnull[i] = true;
  }
  auto zero = [&](int att) {
    if (att == 0) return;
    fresh->tts_values[att - 1] = Int64GetDatum(0);
    fresh->tts_isnull[att - 1] = false;
  };
  for (int j = 0; j < s.ngroups; ++j) {
    int a = from[gatt[j] - 1] - 1;
    fresh->tts_values[gatt[j] - 1] = ev[a];
    fresh->tts_isnull[gatt[j] - 1] = en[a];
  }
  zero(cnt);
  for (int i = 0; i < s.naggs; ++i) {
    const Agg& g = aggs[i];
    switch (g.kind) {
      case AggKind::CountStar:
      case AggKind::Count: zero(g.a); break;
      case AggKind::BoolAnd:
      case AggKind::BoolOr:
        zero(g.a);
        zero(g.n);
        break;
      case AggKind::Sum:
      case AggKind::Avg: zero(g.n); break;
      default: break;
    }
  }
  fresh->tts_values[dirty - 1] = BoolGetDatum(false);
  fresh->tts_isnull[dirty - 1] = false;
  ExecStoreVirtualTuple(fresh);
}

// merge_rows: the whole merge, in PostgreSQL's terms (under pg_call): the
// `n` delta rows `dvals` (row type `deltas`, sorted by group) locked, then
// merged, written and finalized.
Outcome merge_rows(const Spec& s, TupleDesc deltas, HeapTuple* dvals, uint64 n) {
  Outcome out;
  rows::Target t;
  rows::open_target(t, s.state, true);
  TupleDesc sd = RelationGetDescr(t.rel);
  int natts = sd->natts;
  // Each state column from the delta column of its name and type.
  int* from = static_cast<int*>(palloc0(sizeof(int) * static_cast<std::size_t>(natts)));
  bool ok = pg_class_aclmask(s.state, GetUserId(), ACL_SELECT | ACL_UPDATE, ACLMASK_ALL) == (ACL_SELECT | ACL_UPDATE) &&
            !t.rel->trigdesc && t.rel->rd_rel->relkind == RELKIND_RELATION && !t.rel->rd_rel->relhassubclass;
  for (int i = 0; i < natts && ok; ++i) {
    Form_pg_attribute att = TupleDescAttr(sd, i);
    if (att->attisdropped) continue;
    from[i] = attno(deltas, NameStr(att->attname));
    ok = from[i] > 0 && type_of(deltas, from[i]) == att->atttypid;
  }
  auto* gatt = static_cast<AttrNumber*>(palloc(sizeof(AttrNumber) * static_cast<std::size_t>(s.ngroups)));
  for (int j = 0; j < s.ngroups && ok; ++j) ok = (gatt[j] = static_cast<AttrNumber>(attno(sd, "g", j))) > 0;
  int cnt = attno(sd, "__cnt"), dirty = attno(sd, "__dirty");
  ok = ok && cnt > 0 && dirty > 0 && type_of(sd, cnt) == INT8OID && type_of(sd, dirty) == BOOLOID;
  auto* aggs = static_cast<Agg*>(palloc0(sizeof(Agg) * static_cast<std::size_t>(s.naggs)));
  ok = ok && setup_aggs(s, sd, aggs);
  Relation index = ok ? rows::key_index(t, gatt, s.ngroups) : nullptr;
  if (!ok || !index) {
    rows::close_target(t);
    return out;
  }
  rows::begin_writes(t);
  TupleTableSlot* found = table_slot_create(t.rel, &t.estate->es_tupleTable);
  TupleTableSlot* fresh = ExecInitExtraTupleSlot(t.estate, sd, &TTSOpsVirtual);
  TupleTableSlot* held = ExecInitExtraTupleSlot(t.estate, sd, &TTSOpsHeapTuple);
  RegProcedure* eq = rows::equality_procs(index, s.ngroups);
  auto* keys = static_cast<ScanKeyData*>(palloc(sizeof(ScanKeyData) * static_cast<std::size_t>(s.ngroups)));
  auto* ev = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<std::size_t>(deltas->natts)));
  auto* en = static_cast<bool*>(palloc(sizeof(bool) * static_cast<std::size_t>(deltas->natts)));

  // 1. Every group's state row, locked in the deltas' order (the upsert's):
  // writers of the same groups queue instead of deadlocking.  A new group
  // gets a row holding no rows, inserted as the upsert inserts (the same
  // order, the same wait for a writer inserting the group too), which step 2
  // merges into as into any other.  A row gone before it could be locked
  // stops the merge: the upsert statement then adds the deltas (to the rows
  // inserted here as well: they hold nothing).
  auto* locked = static_cast<HeapTuple*>(palloc(sizeof(HeapTuple) * static_cast<std::size_t>(n > 0 ? n : 1)));
  bool inserted = false;
  for (uint64 r = 0; r < n; ++r) {
    heap_deform_tuple(dvals[r], deltas, ev, en);
    for (int j = 0; j < s.ngroups; ++j) {
      int a = from[gatt[j] - 1] - 1;
      rows::set_key(keys, j, index, eq, ev[a], en[a]);
    }
    TupleTableSlot* row = found;
    if (!rows::probe(t, index, keys, s.ngroups, found)) {
      empty_group(s, aggs, sd, from, ev, en, gatt, cnt, dirty, fresh);
      if (rows::insert_new(t, index, fresh, found) == rows::NewRow::Inserted) {
        row = fresh;
        inserted = true;
      }
    } else if (!rows::lock_latest(t, found)) {
      rows::close_target(t);
      return out;
    }
    locked[r] = ExecCopySlotHeapTuple(row);
    locked[r]->t_self = row->tts_tid;
    ExecClearTuple(row);
  }
  // The rows inserted above are updated below: by a later command.
  if (inserted) CommandCounterIncrement();

  // The groups as sql_agg_upsert_rows returns them.
  MemoryContext old = MemoryContextSwitchTo(s.keep);
  int nout = s.ngroups + s.naggs + 3 + s.ncols;
  TupleDesc od = CreateTemplateTupleDesc(nout);
  AttrNumber k = 0;
  for (int j = 0; j < s.ngroups; ++j) TupleDescCopyEntry(od, ++k, sd, gatt[j]);
  for (int i = 0; i < s.naggs; ++i) {
    char name[NAMEDATALEN];
    snprintf(name, sizeof(name), "a%d", i);
    TupleDescInitEntry(od, ++k, name, aggs[i].final_type, -1, 0);
    TupleDescInitEntryCollation(od, k, TupleDescAttr(sd, aggs[i].a - 1)->attcollation);
  }
  TupleDescInitEntry(od, ++k, "__cnt", INT8OID, -1, 0);
  TupleDescInitEntry(od, ++k, "__dirty", BOOLOID, -1, 0);
  TupleDescInitEntry(od, ++k, "__live", BOOLOID, -1, 0);
  // c<i>: a group column, or a finalized aggregate.  Writing the view checks
  // that these are its columns' types (apply_keyed steps aside otherwise).
  for (int c = 0; c < s.ncols; ++c) {
    char name[NAMEDATALEN];
    snprintf(name, sizeof(name), "c%d", c);
    ++k;
    int src = s.column[c] < 0 ? -1 - s.column[c] : s.ngroups + s.column[c];
    TupleDescCopyEntry(od, k, od, static_cast<AttrNumber>(src + 1));
    namestrcpy(&TupleDescAttr(od, k - 1)->attname, name);
  }
  out.m.desc = od;
  out.m.n = n;
  out.m.rows = static_cast<HeapTuple*>(palloc(sizeof(HeapTuple) * static_cast<std::size_t>(n > 0 ? n : 1)));
  MemoryContextSwitchTo(old);

  // 2. Each group merged, written, finalized.
  auto* sv = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<std::size_t>(natts)));
  auto* sn = static_cast<bool*>(palloc(sizeof(bool) * static_cast<std::size_t>(natts)));
  auto* dv = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<std::size_t>(natts)));
  auto* dn = static_cast<bool*>(palloc(sizeof(bool) * static_cast<std::size_t>(natts)));
  auto* ov = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<std::size_t>(nout)));
  auto* on = static_cast<bool*>(palloc(sizeof(bool) * static_cast<std::size_t>(nout)));
  MemoryContext row_cxt = AllocSetContextCreate(CurrentMemoryContext, "ivm state merge", ALLOCSET_SMALL_SIZES);
  for (uint64 r = 0; r < n; ++r) {
    MemoryContext outer = MemoryContextSwitchTo(row_cxt);
    heap_deform_tuple(dvals[r], deltas, ev, en);
    heap_deform_tuple(locked[r], sd, sv, sn);
    for (int i = 0; i < natts; ++i) {
      dv[i] = from[i] > 0 ? ev[from[i] - 1] : 0;
      dn[i] = from[i] > 0 ? en[from[i] - 1] : true;
    }
    V count = add8(V{sv[cnt - 1], sn[cnt - 1]}, V{dv[cnt - 1], dn[cnt - 1]});
    sv[cnt - 1] = count.v;
    sn[cnt - 1] = count.null;
    bool lost = false;
    for (int i = 0; i < s.naggs; ++i) lost = merge_agg(aggs[i], sv, sn, dv, dn) || lost;
    bool was_dirty = !sn[dirty - 1] && DatumGetBool(sv[dirty - 1]);
    sv[dirty - 1] = BoolGetDatum(was_dirty || lost);
    sn[dirty - 1] = false;

    ExecClearTuple(fresh);
    memcpy(fresh->tts_values, sv, sizeof(Datum) * static_cast<std::size_t>(natts));
    memcpy(fresh->tts_isnull, sn, sizeof(bool) * static_cast<std::size_t>(natts));
    ExecStoreVirtualTuple(fresh);
    ExecStoreHeapTuple(locked[r], held, false);
    ExecSimpleRelationUpdate(t.rri, t.estate, &t.epq, held, fresh);
    ExecClearTuple(held);

    bool live = positive(count);
    int o = 0;
    for (int j = 0; j < s.ngroups; ++j) {
      ov[o] = sv[gatt[j] - 1];
      on[o++] = sn[gatt[j] - 1];
      out.m.nulls = out.m.nulls || sn[gatt[j] - 1];
    }
    int first_agg = o;
    for (int i = 0; i < s.naggs; ++i) {
      V f = finalize(aggs[i], sv, sn);
      ov[o] = f.v;
      on[o++] = f.null;
    }
    ov[o] = count.v;
    on[o++] = count.null;
    ov[o] = BoolGetDatum(was_dirty || lost);
    on[o++] = false;
    ov[o] = BoolGetDatum(live);
    on[o++] = false;
    // Output columns: a group column is the group itself, live or not (it
    // finds the group's row in the view); the others only when live.
    for (int c = 0; c < s.ncols; ++c, ++o) {
      int src = s.column[c] < 0 ? -1 - s.column[c] : first_agg + s.column[c];
      bool keep = s.column[c] < 0 || live;
      ov[o] = keep ? ov[src] : 0;
      on[o] = keep ? on[src] : true;
    }
    out.m.dirty = out.m.dirty || was_dirty || lost;
    out.m.emptied = out.m.emptied || count.null || DatumGetInt64(count.v) <= 0;
    MemoryContextSwitchTo(s.keep);
    out.m.rows[r] = heap_form_tuple(od, ov, on);
    MemoryContextSwitchTo(outer);
    MemoryContextReset(row_cxt);
  }
  MemoryContextDelete(row_cxt);
  rows::close_target(t);
  out.done = true;
  return out;
}

}  // namespace

std::optional<Merged> merge_state(pg::Spi& spi, const plan::ViewPlan& p, const pg::Tuples& d) {
  std::vector<int> column = plan::merged_columns(p);
  Oid state = column.empty() ? InvalidOid : pg::relation_oid(p.state);
  if (!OidIsValid(state)) return std::nullopt;
  std::vector<AggKind> kinds;
  std::vector<char> interval_avg;
  for (const plan::Aggregate& ag : p.aggs) {
    kinds.push_back(ag.kind);
    interval_avg.push_back(ag.interval_avg ? 1 : 0);
  }
  Spec s;
  s.state = state;
  s.ngroups = static_cast<int>(p.groups.size());
  s.naggs = static_cast<int>(p.aggs.size());
  s.kinds = kinds.data();
  s.interval_avg = interval_avg.data();
  s.ncols = static_cast<int>(column.size());
  s.column = column.data();
  s.keep = spi.context();
  Outcome o = pg::pg_call([&] { return merge_rows(s, d.desc, d.rows, d.n); });
  if (!o.done) return std::nullopt;
  return o.m;
}

}  // namespace ivm::apply

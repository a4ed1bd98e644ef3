// computed.cpp: the rows a view's maintenance computes from a change, below
// SQL (see computed.hpp).
#include "apply/computed.hpp"

#include "apply/exprs.hpp"

extern "C" {
#include "access/genam.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "catalog/pg_am.h"
#include "utils/acl.h"
#include "utils/datum.h"
#include "utils/rls.h"
}

#include <algorithm>
#include <string>
#include <vector>

namespace ivm::apply {

namespace {

// Source: one registered change of a leaf.  PostgreSQL's terms from here to
// the end of the namespace: plain data, called under pg_call.
struct Source {
  Tuplestorestate* store = nullptr;
  TupleDesc desc = nullptr;
  const char* m_column = nullptr;  // "__m", or nullptr: every row counts `m`
  int64 m = 0;
  const char* key_column = nullptr;  // joins: the leaf's key column
};

// Row: a view row computed, with its multiplicity.
struct Row {
  Datum* values;
  bool* nulls;
  int64 m;
};

struct Order {
  FmgrInfo* cmp;
  Oid collation;
};

int compare_values(Datum a, bool a_null, Datum b, bool b_null, const Order& o) {
  if (a_null || b_null) return a_null == b_null ? 0 : (a_null ? 1 : -1);  // NULLS LAST, as ORDER BY
  return DatumGetInt32(FunctionCall2Coll(o.cmp, o.collation, a, b));
}

// order_of: the btree comparison of `type`, or false when it has none.
bool order_of(Oid type, Oid collation, Order* o) {
  TypeCacheEntry* tc = lookup_type_cache(type, TYPECACHE_CMP_PROC_FINFO);
  if (!OidIsValid(tc->cmp_proc)) return false;
  o->cmp = &tc->cmp_proc_finfo;
  o->collation = collation;
  return true;
}

bool same_image(const Row& a, const Row& b, TupleDesc view) {
  for (int i = 0; i < view->natts; ++i) {
    Form_pg_attribute att = TupleDescAttr(view, i);
    if (a.nulls[i] != b.nulls[i]) return false;
    if (!a.nulls[i] && !datum_image_eq(a.values[i], b.values[i], att->attbyval, att->attlen)) return false;
  }
  return true;
}

// cancel_equal: sums the multiplicities of rows with equal images into the
// first of them (the others count 0).
void cancel_equal(Row* rows, std::size_t n, TupleDesc desc) {
  for (std::size_t i = 1; i < n; ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (rows[j].m != 0 && same_image(rows[j], rows[i], desc)) {
        rows[j].m += rows[i].m;
        rows[i].m = 0;
        break;
      }
}

HeapTuple form_row(TupleDesc d, const Row& r, bool with_m, bool live) {
  int first = with_m ? 2 : 1, n = d->natts;
  Datum* values = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<std::size_t>(n)));
  bool* nulls = static_cast<bool*>(palloc(sizeof(bool) * static_cast<std::size_t>(n)));
  if (with_m) {
    values[0] = Int64GetDatum(r.m);
    nulls[0] = false;
  }
  values[first - 1] = BoolGetDatum(live);
  nulls[first - 1] = false;
  for (int i = first; i < n; ++i) {
    values[i] = r.values[i - first];
    nulls[i] = r.nulls[i - first];
  }
  HeapTuple t = heap_form_tuple(d, values, nulls);
  pfree(values);
  pfree(nulls);
  return t;
}

// source_columns: per attribute leaf `leaf` of the view reads, its column in
// the source (by name, of the same type), into `from`; false if one is missing.
bool source_columns(const exprs::Compiled* c, int leaf, TupleDesc source, AttrNumber* from) {
  Relation rel = relation_open(c->relids[leaf], AccessShareLock);
  TupleDesc d = RelationGetDescr(rel);
  bool ok = true;
  for (int k = 0; k < c->nused[leaf] && ok; ++k) {
    Form_pg_attribute att = TupleDescAttr(d, c->used[leaf][k] - 1);
    int a = SPI_fnumber(source, NameStr(att->attname));
    ok = a > 0 && TupleDescAttr(source, a - 1)->atttypid == att->atttypid;
    from[k] = static_cast<AttrNumber>(ok ? a : 0);
  }
  relation_close(rel, NoLock);
  return ok;
}

// put_leaf: the leaf's columns of the evaluator's row from `slot` (all
// attributes deformed), read at `from` (nullptr: the leaf's own attributes).
void put_leaf(exprs::Evaluator& e, int leaf, TupleTableSlot* slot, const AttrNumber* from) {
  const exprs::Compiled* c = e.c;
  for (int k = 0; k < c->nused[leaf]; ++k) {
    int a = c->used[leaf][k];
    int s = (from ? from[k] : a) - 1;
    e.row->tts_values[c->offset[leaf] + a - 1] = slot->tts_values[s];
    e.row->tts_isnull[c->offset[leaf] + a - 1] = slot->tts_isnull[s];
  }
}

void clear_leaf(exprs::Evaluator& e, int leaf) {
  const exprs::Compiled* c = e.c;
  for (int k = 0; k < c->nused[leaf]; ++k) {
    e.row->tts_values[c->offset[leaf] + c->used[leaf][k] - 1] = static_cast<Datum>(0);
    e.row->tts_isnull[c->offset[leaf] + c->used[leaf][k] - 1] = true;
  }
}

struct Rows {
  Row* rows = nullptr;
  std::size_t n = 0, cap = 0;
};

Row& add_row(Rows& r, int width) {
  if (r.n == r.cap) {
    r.cap = r.cap ? 2 * r.cap : 16;
    r.rows = static_cast<Row*>(r.rows ? repalloc(r.rows, sizeof(Row) * r.cap) : palloc(sizeof(Row) * r.cap));
  }
  Row& row = r.rows[r.n++];
  row.values = static_cast<Datum*>(palloc0(sizeof(Datum) * static_cast<std::size_t>(width)));
  row.nulls = static_cast<bool*>(palloc(sizeof(bool) * static_cast<std::size_t>(width)));
  row.m = 0;
  return row;
}

// readable: whether every source holds the columns leaf 0's expressions read
// (and __m when it counts its rows by it); where they are, in from[source].
bool readable(const exprs::Compiled* c, const Source* sources, int nsources, AttrNumber** from) {
  for (int s = 0; s < nsources; ++s) {
    from[s] = static_cast<AttrNumber*>(palloc(sizeof(AttrNumber) * static_cast<std::size_t>(c->nused[0] + 1)));
    if (!source_columns(c, 0, sources[s].desc, from[s])) return false;
    int m = sources[s].m_column ? SPI_fnumber(sources[s].desc, sources[s].m_column) : 0;
    if (sources[s].m_column && (m <= 0 || TupleDescAttr(sources[s].desc, m - 1)->atttypid != INT8OID)) return false;
  }
  return true;
}

// read_rows: the outputs of every row of the sources that passes the WHERE,
// with the row's multiplicity, into `rows` (allocated in `cxt`).
void read_rows(exprs::Evaluator& e, const Source* sources, int nsources, AttrNumber* const* from, MemoryContext cxt,
               Rows& rows) {
  const exprs::Compiled* c = e.c;
  for (int s = 0; s < nsources; ++s) {
    const Source& src = sources[s];
    int m_attno = src.m_column ? SPI_fnumber(src.desc, src.m_column) : 0;
    TupleTableSlot* slot = MakeSingleTupleTableSlot(src.desc, &TTSOpsMinimalTuple);
    pg::begin_own_scan(src.store);
    while (tuplestore_gettupleslot(src.store, true, false, slot)) {
      slot_getallattrs(slot);
      int64 m = m_attno ? (slot->tts_isnull[m_attno - 1] ? 0 : DatumGetInt64(slot->tts_values[m_attno - 1])) : src.m;
      if (m == 0) continue;
      exprs::clear_row(e);
      put_leaf(e, 0, slot, from[s]);
      if (!exprs::holds(e, e.where)) continue;
      MemoryContext old = MemoryContextSwitchTo(cxt);
      Row& r = add_row(rows, c->noutputs);
      MemoryContextSwitchTo(old);
      exprs::evaluate(e, r.values, r.nulls, cxt);
      r.m = m;
    }
    pg::end_own_scan(src.store);
    ExecDropSingleTupleTableSlot(slot);
  }
}

// read_all: read_rows over every source, into a new context (returned; the
// caller deletes it), or nullptr when a source lacks a column (readable).
MemoryContext read_all(const exprs::Compiled* c, const Source* sources, int nsources, Rows& rows) {
  auto** from =
      static_cast<AttrNumber**>(palloc(sizeof(AttrNumber*) * static_cast<std::size_t>(std::max(nsources, 1))));
  if (!readable(c, sources, nsources, from)) return nullptr;
  MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "ivm change rows", ALLOCSET_DEFAULT_SIZES);
  exprs::Evaluator e;
  exprs::begin(e, c, 0);
  read_rows(e, sources, nsources, from, cxt, rows);
  exprs::end(e);
  return cxt;
}

// RowOrder: rows compared on columns cols[0..n), each by its btree order.
struct RowOrder {
  const int* cols;
  const Order* orders;
  int n;
};

int compare_rows(const void* a, const void* b, void* arg) {
  const auto* o = static_cast<const RowOrder*>(arg);
  const Row* x = static_cast<const Row*>(a);
  const Row* y = static_cast<const Row*>(b);
  for (int j = 0; j < o->n; ++j) {
    int k = o->cols[j];
    if (int r = compare_values(x->values[k], x->nulls[k], y->values[k], y->nulls[k], o->orders[j])) return r;
  }
  return 0;
}

// sort_rows: the rows in that order; group_end: where the run of rows equal
// to rows[g] in it ends.
void sort_rows(Rows& rows, RowOrder& o) {
  if (rows.n > 1 && o.n > 0) qsort_arg(rows.rows, rows.n, sizeof(Row), compare_rows, &o);
}
std::size_t group_end(const Rows& rows, std::size_t g, RowOrder& o) {
  std::size_t end = g + 1;
  while (end < rows.n && compare_rows(&rows.rows[g], &rows.rows[end], &o) == 0) ++end;
  return end;
}

// projection: the single-leaf shape.  False: the statement instead.
bool projection(const exprs::Compiled* c, const Source* sources, int nsources, int locator, MemoryContext keep,
                pg::Tuples* out) {
  Form_pg_attribute loc = TupleDescAttr(c->types, locator);
  Order order;
  if (!order_of(loc->atttypid, loc->attcollation, &order)) return false;
  Rows rows;
  MemoryContext cxt = read_all(c, sources, nsources, rows);
  if (!cxt) return false;

  // Sorted by locator; per locator the rows of equal images summed, then the
  // one of the greatest sum kept (sql_spj_rows: DISTINCT ON (locator) ...
  // ORDER BY locator, __m DESC over the consolidated rows).
  RowOrder by_locator{&locator, &order, 1};
  sort_rows(rows, by_locator);
  MemoryContext old = MemoryContextSwitchTo(keep);
  out->desc = CreateTupleDescCopy(c->result[1]);
  out->rows = static_cast<HeapTuple*>(palloc(sizeof(HeapTuple) * std::max<std::size_t>(rows.n, 1)));
  out->n = 0;
  for (std::size_t g = 0; g < rows.n;) {
    std::size_t end = group_end(rows, g, by_locator);
    cancel_equal(rows.rows + g, end - g, c->types);
    const Row* best = nullptr;
    for (std::size_t i = g; i < end; ++i)
      if (rows.rows[i].m != 0 && (!best || rows.rows[i].m > best->m)) best = &rows.rows[i];
    if (best) out->rows[out->n++] = form_row(out->desc, *best, true, best->m > 0);
    g = end;
  }
  MemoryContextSwitchTo(old);
  MemoryContextDelete(cxt);
  return true;
}

// delta_rows: sql_agg_delta_rows's rows for the one-leaf aggregate view
// whose items `c` holds (g<j>, v<i>, f<i>, the first `ngroups` the groups),
// then __m, sorted by group.  False: the statement.
bool delta_rows(const exprs::Compiled* c, int ngroups, const Source* sources, int nsources, MemoryContext keep,
                pg::Tuples* out) {
  Order* orders = static_cast<Order*>(palloc(sizeof(Order) * static_cast<std::size_t>(std::max(ngroups, 1))));
  for (int j = 0; j < ngroups; ++j) {
    Form_pg_attribute att = TupleDescAttr(c->types, j);
    if (!order_of(att->atttypid, att->attcollation, &orders[j])) return false;
  }
  Rows rows;
  MemoryContext cxt = read_all(c, sources, nsources, rows);
  if (!cxt) return false;

  int* cols = static_cast<int*>(palloc(sizeof(int) * static_cast<std::size_t>(std::max(ngroups, 1))));
  for (int j = 0; j < ngroups; ++j) cols[j] = j;
  RowOrder by_group{cols, orders, ngroups};
  sort_rows(rows, by_group);
  // Rows of one group with equal images cancel, as the statement's reading
  // of the change consolidated (an UPDATE of a column the view does not
  // read changes nothing): nothing left, nothing to merge.  Compared pair by
  // pair within groups of a few rows; a group of more is summed as it is,
  // which gives the same state.
  constexpr std::size_t kCancelWithin = 64;
  for (std::size_t g = 0; g < rows.n;) {
    std::size_t end = group_end(rows, g, by_group);
    if (end - g <= kCancelWithin) cancel_equal(rows.rows + g, end - g, c->types);
    g = end;
  }
  std::size_t kept = 0;
  for (std::size_t r = 0; r < rows.n; ++r)
    if (rows.rows[r].m != 0) rows.rows[kept++] = rows.rows[r];
  rows.n = kept;
  MemoryContext old = MemoryContextSwitchTo(keep);
  int width = c->noutputs;
  TupleDesc d = CreateTupleDescCopy(c->result[1]);
  out->desc = d;
  out->rows = static_cast<HeapTuple*>(palloc(sizeof(HeapTuple) * std::max<std::size_t>(rows.n, 1)));
  out->n = rows.n;
  Datum* values = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<std::size_t>(width + 1)));
  bool* nulls = static_cast<bool*>(palloc(sizeof(bool) * static_cast<std::size_t>(width + 1)));
  for (std::size_t r = 0; r < rows.n; ++r) {
    for (int i = 0; i < width; ++i) {
      values[i] = rows.rows[r].values[i];
      nulls[i] = rows.rows[r].nulls[i];
    }
    values[width] = Int64GetDatum(rows.rows[r].m);
    nulls[width] = false;
    out->rows[r] = heap_form_tuple(d, values, nulls);
  }
  MemoryContextSwitchTo(old);
  MemoryContextDelete(cxt);
  return true;
}

// Step: one relation of a join chain: the root (node -1), then each leaf
// joined to what is before it, by join node `node`.
struct Step {
  int leaf;
  int node;
  bool inner;
  const char* key_column;
};

// Probe: a leaf's relation read through an index on its key column.
struct Probe {
  Relation rel = nullptr;
  Relation index = nullptr;
  IndexScanDesc scan = nullptr;
  TupleTableSlot* slot = nullptr;   // the row found
  TupleTableSlot* extra = nullptr;  // a second row of the key, if the index is not unique
  RegProcedure eq = InvalidOid;
};

// open_probe: false when the leaf must be read by the statement (see
// computed.hpp); what was opened is in `pr` either way.
bool open_probe(Probe& pr, Oid relid, const char* column, Oid* type, Oid* collation) {
  pr.rel = table_open(relid, AccessShareLock);
  if (pr.rel->rd_rel->relkind != RELKIND_RELATION || pr.rel->rd_rel->relhassubclass) return false;
  if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK) return false;
  if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED) return false;
  AttrNumber a = get_attnum(relid, column);
  if (a <= 0) return false;
  Form_pg_attribute att = TupleDescAttr(RelationGetDescr(pr.rel), a - 1);
  if (!OidIsValid(*type)) {
    *type = att->atttypid;
    *collation = att->attcollation;
  }
  if (att->atttypid != *type || att->attcollation != *collation) return false;
  List* indexes = RelationGetIndexList(pr.rel);
  ListCell* lc;
  foreach (lc, indexes) {
    Relation index = index_open(lfirst_oid(lc), AccessShareLock);
    Form_pg_index ix = index->rd_index;
    bool fits = ix->indisvalid && ix->indislive && index->rd_rel->relam == BTREE_AM_OID && ix->indnkeyatts == 1 &&
                ix->indkey.values[0] == a && index->rd_opcintype[0] == att->atttypid &&
                index->rd_indcollation[0] == att->attcollation && RelationGetIndexExpressions(index) == NIL &&
                RelationGetIndexPredicate(index) == NIL;
    // A unique one if there is one: no second row to look for.
    if (fits && (!pr.index || (ix->indisunique && !pr.index->rd_index->indisunique))) {
      if (pr.index) index_close(pr.index, AccessShareLock);
      pr.index = index;
    } else {
      index_close(index, AccessShareLock);
    }
  }
  list_free(indexes);
  if (!pr.index) return false;
  Oid op = get_opfamily_member(pr.index->rd_opfamily[0], *type, *type, BTEqualStrategyNumber);
  if (!OidIsValid(op)) return false;
  pr.eq = get_opcode(op);
  return true;
}

void close_probe(Probe& pr) {
  if (pr.scan) index_endscan(pr.scan);
  if (pr.slot) ExecDropSingleTupleTableSlot(pr.slot);
  if (pr.extra) ExecDropSingleTupleTableSlot(pr.extra);
  if (pr.index) index_close(pr.index, AccessShareLock);
  if (pr.rel) table_close(pr.rel, NoLock);
}

// find: the row of key k into pr.slot; -1 when a second row has it too.
int find(Probe& pr, Datum k) {
  ScanKeyData key;
  ScanKeyInit(&key, 1, BTEqualStrategyNumber, pr.eq, k);
  key.sk_collation = pr.index->rd_indcollation[0];
  index_rescan(pr.scan, &key, 1, nullptr, 0);
  if (!index_getnext_slot(pr.scan, ForwardScanDirection, pr.slot)) return 0;
  if (!pr.index->rd_index->indisunique && index_getnext_slot(pr.scan, ForwardScanDirection, pr.extra)) return -1;
  slot_getallattrs(pr.slot);
  return 1;
}

// joined: the join-chain shape.  False: the statement instead.
bool joined(const exprs::Compiled* c, const Step* steps, int nsteps, int njoins, const Source* sources, int nsources,
            int view_key, Snapshot scope, MemoryContext keep, pg::Tuples* out) {
  Oid type = InvalidOid, collation = InvalidOid;
  Probe* probes = static_cast<Probe*>(palloc0(sizeof(Probe) * static_cast<std::size_t>(nsteps)));
  bool ok = true;
  for (int s = 0; s < nsteps && ok; ++s)
    ok = open_probe(probes[s], c->relids[steps[s].leaf], steps[s].key_column, &type, &collation);
  Form_pg_attribute vk = TupleDescAttr(c->types, view_key);
  ok = ok && vk->atttypid == type;
  Order order;
  ok = ok && order_of(type, collation, &order);
  // The changed keys, in key order, each once.
  int16 typlen = 0;
  bool typbyval = false;
  if (ok) get_typlenbyval(type, &typlen, &typbyval);
  std::size_t n = 0, cap = 16;
  Datum* keys = static_cast<Datum*>(palloc(sizeof(Datum) * cap));
  for (int s = 0; s < nsources && ok; ++s) {
    const Source& src = sources[s];
    int a = SPI_fnumber(src.desc, src.key_column);
    ok = a > 0 && TupleDescAttr(src.desc, a - 1)->atttypid == type;
    if (!ok) break;
    TupleTableSlot* slot = MakeSingleTupleTableSlot(src.desc, &TTSOpsMinimalTuple);
    pg::begin_own_scan(src.store);
    while (tuplestore_gettupleslot(src.store, true, false, slot)) {
      bool isnull = false;
      Datum v = slot_getattr(slot, a, &isnull);
      if (isnull) continue;
      if (n == cap) keys = static_cast<Datum*>(repalloc(keys, sizeof(Datum) * (cap *= 2)));
      keys[n++] = datumCopy(v, typbyval, typlen);
    }
    pg::end_own_scan(src.store);
    ExecDropSingleTupleTableSlot(slot);
  }
  if (!ok) {
    for (int s = 0; s < nsteps; ++s) close_probe(probes[s]);
    return false;
  }
  auto by_key = [](const void* a, const void* b, void* p) {
    return compare_values(*static_cast<const Datum*>(a), false, *static_cast<const Datum*>(b), false,
                          *static_cast<Order*>(p));
  };
  if (n > 1) qsort_arg(keys, n, sizeof(Datum), by_key, &order);

  // Read as the statement would read: after a new command id, in the
  // apply's snapshot if it has one, else in a new one.
  CommandCounterIncrement();
  PushActiveSnapshot(scope ? scope : GetTransactionSnapshot());
  UpdateActiveSnapshotCommandId();
  Snapshot snapshot = GetActiveSnapshot();
  for (int s = 0; s < nsteps; ++s) {
    Probe& pr = probes[s];
    pr.slot = table_slot_create(pr.rel, nullptr);
    pr.extra = table_slot_create(pr.rel, nullptr);
    pr.scan = index_beginscan(pr.rel, pr.index, snapshot, 1, 0);
  }
  exprs::Evaluator e;
  exprs::begin(e, c, njoins);
  MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "ivm view rows", ALLOCSET_DEFAULT_SIZES);
  MemoryContext old = MemoryContextSwitchTo(keep);
  out->desc = CreateTupleDescCopy(c->result[0]);
  out->rows = static_cast<HeapTuple*>(palloc(sizeof(HeapTuple) * std::max<std::size_t>(n, 1)));
  out->n = 0;
  MemoryContextSwitchTo(old);
  Row r;
  r.values = static_cast<Datum*>(palloc(sizeof(Datum) * static_cast<std::size_t>(c->noutputs)));
  r.nulls = static_cast<bool*>(palloc(sizeof(bool) * static_cast<std::size_t>(c->noutputs)));
  r.m = 0;
  for (std::size_t i = 0; i < n && ok; ++i) {
    if (i > 0 && by_key(&keys[i - 1], &keys[i], &order) == 0) continue;
    exprs::clear_row(e);
    bool live = true;
    for (int s = 0; s < nsteps && live && ok; ++s) {
      const Step& st = steps[s];
      int found = find(probes[s], keys[i]);
      if (found < 0) ok = false;
      if (found > 0) put_leaf(e, st.leaf, probes[s].slot, nullptr);
      if (found > 0 && st.node >= 0 && !exprs::holds(e, e.on[st.node])) {
        clear_leaf(e, st.leaf);
        found = 0;
      }
      if (found == 0 && (st.node < 0 || st.inner)) live = false;
    }
    if (!ok) break;
    live = live && exprs::holds(e, e.where);
    if (live) {
      exprs::evaluate(e, r.values, r.nulls, cxt);
    } else {
      for (int k = 0; k < c->noutputs; ++k) r.nulls[k] = true;
      r.values[view_key] = keys[i];
      r.nulls[view_key] = false;
    }
    old = MemoryContextSwitchTo(keep);
    out->rows[out->n++] = form_row(out->desc, r, false, live);
    MemoryContextSwitchTo(old);
    MemoryContextReset(cxt);
  }
  exprs::end(e);
  for (int s = 0; s < nsteps; ++s) close_probe(probes[s]);
  PopActiveSnapshot();
  MemoryContextDelete(cxt);
  return ok;
}

// sources_of: the registered changes of c, with the key column of each
// leaf's from `keys` (nullptr: none); false when one is not held in memory.
bool sources_of(pg::Spi& spi, const plan::Changes& c, const std::vector<std::string>* keys,
                std::vector<Source>& sources) {
  for (const auto& [leaf, d] : c) {
    const char* key = keys ? (*keys)[static_cast<std::size_t>(leaf)].c_str() : nullptr;
    const std::pair<const std::string*, int64> parts[] = {{&d.inserted, 1}, {&d.deleted, -1}, {&d.bag, 0}};
    for (const auto& [name, m] : parts) {
      if (name->empty()) continue;
      Source s;
      if (!spi.find_store(*name, s.store, s.desc)) return false;
      s.m = m;
      s.m_column = m == 0 ? "__m" : nullptr;
      s.key_column = key;
      sources.push_back(s);
    }
  }
  return true;
}

}  // namespace

std::optional<pg::Tuples> spj_rows(pg::Spi& spi, const plan::ViewPlan& p, const plan::Changes& c) {
  if (p.aggregate || c.empty() || p.leaves.empty()) return std::nullopt;
  std::vector<Step> chain;
  std::vector<std::string> key_columns(p.leaves.size());
  if (!p.outer) {
    if (p.leaves.size() != 1 || p.locator < 0 || !c.count(0)) return std::nullopt;
  } else {
    if (!p.unique_key || p.view_key < 0) return std::nullopt;
    for (std::size_t l = 0; l < p.leaves.size(); ++l) {
      key_columns[l] = plan::key_column(p.leaves[l]);
      if (key_columns[l].empty()) return std::nullopt;
    }
    // A chain of inner and left joins, each adding one leaf.
    int node = p.root;
    while (node >= 0 && p.joins[static_cast<std::size_t>(node)].kind != plan::JoinKind::Leaf) {
      const plan::JoinNode& j = p.joins[static_cast<std::size_t>(node)];
      if (j.kind != plan::JoinKind::Inner && j.kind != plan::JoinKind::Left) return std::nullopt;
      const plan::JoinNode& right = p.joins[static_cast<std::size_t>(j.right)];
      if (right.kind != plan::JoinKind::Leaf) return std::nullopt;
      chain.push_back({right.leaf, node, j.kind == plan::JoinKind::Inner, nullptr});
      node = j.left;
    }
    if (node < 0) return std::nullopt;
    chain.push_back({p.joins[static_cast<std::size_t>(node)].leaf, -1, true, nullptr});
    std::reverse(chain.begin(), chain.end());
    for (Step& s : chain) s.key_column = key_columns[static_cast<std::size_t>(s.leaf)].c_str();
  }
  const exprs::Compiled* compiled = exprs::compiled(p, exprs::Kind::ViewRows);
  if (!compiled) return std::nullopt;
  exprs::InUse in_use;

  std::vector<Source> sources;
  if (!sources_of(spi, c, p.outer ? &key_columns : nullptr, sources)) return std::nullopt;
  pg::Tuples out;
  bool done = pg::pg_call([&] {
    if (!p.outer)
      return projection(compiled, sources.data(), static_cast<int>(sources.size()), p.locator, spi.context(), &out);
    return joined(compiled, chain.data(), static_cast<int>(chain.size()), static_cast<int>(p.joins.size()),
                  sources.data(), static_cast<int>(sources.size()), p.view_key, spi.snapshot(), spi.context(), &out);
  });
  if (!done) return std::nullopt;
  return out;
}

std::optional<pg::Tuples> agg_delta_rows(pg::Spi& spi, const plan::ViewPlan& p, const plan::Changes& c) {
  if (!p.aggregate || p.leaves.size() != 1 || c.size() != 1 || !c.count(0)) return std::nullopt;
  if (!plan::foldable(p)) return std::nullopt;
  const exprs::Compiled* compiled = exprs::compiled(p, exprs::Kind::AggDeltaRows);
  if (!compiled) return std::nullopt;
  exprs::InUse in_use;
  std::vector<Source> sources;
  if (!sources_of(spi, c, nullptr, sources)) return std::nullopt;
  pg::Tuples out;
  bool done = pg::pg_call([&] {
    return delta_rows(compiled, static_cast<int>(p.groups.size()), sources.data(), static_cast<int>(sources.size()),
                      spi.context(), &out);
  });
  if (!done) return std::nullopt;
  return out;
}

}  // namespace ivm::apply

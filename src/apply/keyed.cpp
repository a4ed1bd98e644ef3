// keyed.cpp: writes a view's rows by key (see keyed.hpp).
#include "apply/keyed.hpp"

#include "apply/rows.hpp"

extern "C" {
#include "access/detoast.h"
#include "access/nbtree.h"
#include "access/tableam.h"
#include "utils/datum.h"
}

#include <algorithm>
#include <string>
#include <vector>

namespace ivm::apply {

namespace {

using rows::Target;

// Where the parts of a result row are (1-based; see apply_keyed).
struct Layout {
  int live = 0;
  int first = 0;                // c0; c<i> follow
  int m = 0;                    // __m, or 0
  std::vector<AttrNumber> key;  // the view's key columns (attribute numbers)
};

// writable: whether `rel` can be written row by row from this result (see
// apply_keyed).
bool writable(Relation rel, TupleDesc result, const Layout& lay) {
  if (!rows::plain(rel, ACL_SELECT | ACL_INSERT | ACL_UPDATE | ACL_DELETE)) return false;
  TupleDesc desc = RelationGetDescr(rel);
  if (lay.first + desc->natts - 1 > result->natts) return false;
  for (int i = 0; i < desc->natts; ++i)
    if (!rows::holds(TupleDescAttr(desc, i), TupleDescAttr(result, lay.first - 1 + i), false)) return false;
  return true;
}

// same_row: whether two rows are the same image, column by column (a value
// that compares equal but reads differently, such as 1.0 and 1.00, is a
// change: the view must read as its query does).
bool same_row(TupleTableSlot* a, TupleTableSlot* b) {
  TupleDesc desc = a->tts_tupleDescriptor;
  for (int i = 0; i < desc->natts; ++i) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    if (a->tts_isnull[i] != b->tts_isnull[i]) return false;
    if (!a->tts_isnull[i] && !datum_image_eq(a->tts_values[i], b->tts_values[i], att->attbyval, att->attlen))
      return false;
  }
  return true;
}

void put(Tuplestorestate* store, TupleDesc desc, TupleTableSlot* row, int64 m) {
  int n = row->tts_tupleDescriptor->natts;
  Datum* values = static_cast<Datum*>(palloc(sizeof(Datum) * (n + 1)));
  bool* nulls = static_cast<bool*>(palloc(sizeof(bool) * (n + 1)));
  for (int i = 0; i < n; ++i) {
    values[i] = row->tts_values[i];
    nulls[i] = row->tts_isnull[i];
    // A value the view's row keeps in TOAST is copied in: the change must
    // stay readable whatever happens to that row.
    if (!nulls[i] && TupleDescAttr(row->tts_tupleDescriptor, i)->attlen == -1 &&
        VARATT_IS_EXTERNAL(DatumGetPointer(values[i])))
      values[i] = PointerGetDatum(detoast_external_attr(reinterpret_cast<struct varlena*>(DatumGetPointer(values[i]))));
  }
  values[n] = Int64GetDatum(m);
  nulls[n] = false;
  tuplestore_putvalues(store, desc, values, nulls);
  pfree(values);
  pfree(nulls);
}

struct Output {
  bool done = false;
  uint64 rows = 0;
  Tuplestorestate* store = nullptr;
  TupleDesc desc = nullptr;
};

// write_rows: the whole write of result rows `vals` (row type `result`), in
// PostgreSQL's terms (run under pg_call, so nothing here owns a C++ object:
// an error longjmps out of this frame).
Output write_rows(Oid view, const Layout& lay, MemoryContext keep, TupleDesc result, HeapTuple* vals, uint64 n) {
  Output out;
  // A key's row can only go or become another: a multiplicity beyond one
  // means the result is not what keyed_columns promised.
  for (uint64 r = 0; r < n && lay.m > 0; ++r) {
    bool isnull = false;
    int64 m = DatumGetInt64(heap_getattr(vals[r], lay.m, result, &isnull));
    if (isnull || (m != 1 && m != -1)) return out;
  }
  Target target;
  rows::open_target(target, view);
  Relation rel = target.rel;
  int nkeys = static_cast<int>(lay.key.size());
  Relation index = writable(rel, result, lay) ? rows::key_index(target, lay.key.data(), nkeys) : nullptr;
  if (!index) {
    rows::close_target(target);
    return out;
  }
  rows::begin_writes(target);
  EState* estate = target.estate;
  ResultRelInfo* rri = target.rri;
  TupleDesc desc = RelationGetDescr(rel);
  TupleTableSlot* found = table_slot_create(rel, &estate->es_tupleTable);
  TupleTableSlot* fresh = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);

  MemoryContext old = MemoryContextSwitchTo(keep);
  out.desc = CreateTemplateTupleDesc(desc->natts + 1);
  for (int i = 1; i <= desc->natts; ++i) TupleDescCopyEntry(out.desc, static_cast<AttrNumber>(i), desc, i);
  TupleDescInitEntry(out.desc, static_cast<AttrNumber>(desc->natts + 1), "__m", INT8OID, -1, 0);
  out.store = tuplestore_begin_heap(false, false, work_mem);
  MemoryContextSwitchTo(old);

  // The probe: equality on each key column by the index's own operator
  // (found once), or IS NULL for a NULL key.
  RegProcedure* eq = rows::equality_procs(index, nkeys);
  ScanKeyData* keys = static_cast<ScanKeyData*>(palloc(sizeof(ScanKeyData) * static_cast<std::size_t>(nkeys)));
  MemoryContext row_cxt = AllocSetContextCreate(CurrentMemoryContext, "ivm keyed row", ALLOCSET_SMALL_SIZES);
  for (uint64 r = 0; r < n; ++r) {
    MemoryContext outer = MemoryContextSwitchTo(row_cxt);
    HeapTuple t = vals[r];
    bool isnull = false;
    bool live = DatumGetBool(heap_getattr(t, lay.live, result, &isnull)) && !isnull;
    ExecClearTuple(fresh);
    for (int i = 0; i < desc->natts; ++i)
      fresh->tts_values[i] = heap_getattr(t, lay.first + i, result, &fresh->tts_isnull[i]);
    ExecStoreVirtualTuple(fresh);
    for (int k = 0; k < nkeys; ++k) {
      int a = lay.key[static_cast<std::size_t>(k)] - 1;
      rows::set_key(keys, k, index, eq, fresh->tts_values[a], fresh->tts_isnull[a]);
    }
    bool has = rows::probe(target, index, keys, nkeys, found);
    if (has) slot_getallattrs(found);
    if (live && has) {
      if (!same_row(found, fresh)) {
        put(out.store, out.desc, found, -1);
        put(out.store, out.desc, fresh, 1);
        ExecSimpleRelationUpdate(rri, estate, &target.epq, found, fresh);
        out.rows += 2;
      }
    } else if (live) {
      put(out.store, out.desc, fresh, 1);
      ExecSimpleRelationInsert(rri, estate, fresh);
      out.rows += 1;
    } else if (has) {
      put(out.store, out.desc, found, -1);
      ExecSimpleRelationDelete(rri, estate, &target.epq, found);
      out.rows += 1;
    }
    ExecClearTuple(found);
    MemoryContextSwitchTo(outer);
    MemoryContextReset(row_cxt);
  }
  MemoryContextDelete(row_cxt);
  pfree(keys);
  pfree(eq);
  rows::close_target(target);
  out.done = true;
  return out;
}

// KeySource: a column of a registered change holding a leaf's join key.
struct KeySource {
  Tuplestorestate* store;
  TupleDesc desc;
  int attno;  // 1-based
};

// lock_rows: what sql_lock_keys does, for the keys in `sources`: per key, in
// the key-lock index's order, its row is locked (its latest version, after
// waiting for a writer holding it) and updated, or, for a key without its
// row, the row is inserted as ON CONFLICT inserts it (rows::insert_new).
// False when a row went before it could be locked, or the keys are not of
// the table's type; the keys locked so far stay locked.
bool lock_rows(Oid keylock, const KeySource* sources, int nsources) {
  Target t;
  rows::open_target(t, keylock, true);
  TupleDesc desc = RelationGetDescr(t.rel);
  Relation index = nullptr;
  if (desc->natts == 1 && t.rri->ri_NumIndices == 1) {
    IndexInfo* ii = t.rri->ri_IndexRelationInfo[0];
    if (ii->ii_Am == BTREE_AM_OID && ii->ii_NumIndexKeyAttrs == 1 && ii->ii_IndexAttrNumbers[0] == 1 && ii->ii_Unique &&
        ii->ii_Expressions == NIL && ii->ii_Predicate == NIL)
      index = t.rri->ri_IndexRelationDescs[0];
  }
  Form_pg_attribute k = TupleDescAttr(desc, 0);
  bool usable = index != nullptr;
  for (int i = 0; i < nsources && usable; ++i)
    usable = TupleDescAttr(sources[i].desc, sources[i].attno - 1)->atttypid == k->atttypid;
  if (!usable) {
    rows::close_target(t);
    return false;
  }
  // The keys, copied out of the changes.
  std::size_t n = 0, cap = 16;
  auto* keys = static_cast<Datum*>(palloc(sizeof(Datum) * cap));
  for (int i = 0; i < nsources; ++i) {
    const KeySource& src = sources[i];
    TupleTableSlot* slot = MakeSingleTupleTableSlot(src.desc, &TTSOpsMinimalTuple);
    pg::begin_own_scan(src.store);
    while (tuplestore_gettupleslot(src.store, true, false, slot)) {
      bool isnull = false;
      Datum v = slot_getattr(slot, src.attno, &isnull);
      if (isnull) continue;
      if (n == cap) keys = static_cast<Datum*>(repalloc(keys, sizeof(Datum) * (cap *= 2)));
      keys[n++] = datumCopy(v, k->attbyval, k->attlen);
    }
    pg::end_own_scan(src.store);
    ExecDropSingleTupleTableSlot(slot);
  }
  // Sorted as ORDER BY k sorts them: two writers of the same keys queue
  // instead of deadlocking.
  FmgrInfo* cmp = index_getprocinfo(index, 1, BTORDER_PROC);
  Oid collation = index->rd_indcollation[0];
  auto compare = [](const void* a, const void* b, void* arg) {
    auto* c = static_cast<std::pair<FmgrInfo*, Oid>*>(arg);
    return DatumGetInt32(
        FunctionCall2Coll(c->first, c->second, *static_cast<const Datum*>(a), *static_cast<const Datum*>(b)));
  };
  std::pair<FmgrInfo*, Oid> order{cmp, collation};
  qsort_arg(keys, n, sizeof(Datum), compare, &order);
  rows::begin_writes(t);
  RegProcedure* eq = rows::equality_procs(index, 1);
  TupleTableSlot* found = table_slot_create(t.rel, &t.estate->es_tupleTable);
  TupleTableSlot* fresh = ExecInitExtraTupleSlot(t.estate, desc, &TTSOpsVirtual);
  bool done = true;
  for (std::size_t i = 0; i < n && done; ++i) {
    if (i > 0 && compare(&keys[i - 1], &keys[i], &order) == 0) continue;
    ScanKeyData key;
    rows::set_key(&key, 0, index, eq, keys[i], false);
    if (!rows::probe(t, index, &key, 1, found)) {
      ExecClearTuple(fresh);
      fresh->tts_values[0] = keys[i];
      fresh->tts_isnull[0] = false;
      ExecStoreVirtualTuple(fresh);
      if (rows::insert_new(t, index, fresh, found) == rows::NewRow::Inserted) continue;
    } else if (!rows::lock_latest(t, found)) {
      done = false;
      break;
    }
    ExecCopySlot(fresh, found);
    ExecSimpleRelationUpdate(t.rri, t.estate, &t.epq, found, fresh);
    ExecClearTuple(found);
  }
  rows::close_target(t);
  return done;
}

}  // namespace

bool keyed_possible() {
  return pg::pg_call([] { return !IsolationUsesXactSnapshot(); });
}

std::optional<std::uint64_t> apply_keyed(pg::Spi& spi, const plan::ViewPlan& p, const std::string& change,
                                         const pg::Tuples& rows) {
  TupleDesc result = rows.desc;
  Layout lay;
  pg::pg_call([&] {
    lay.live = SPI_fnumber(result, "__live");
    lay.first = SPI_fnumber(result, "c0");
    lay.m = std::max(SPI_fnumber(result, "__m"), 0);
  });
  if (lay.live <= 0 || lay.first <= 0) return std::nullopt;
  for (int c : plan::keyed_columns(p)) {
    if (c < 0 || c >= static_cast<int>(p.columns.size())) return std::nullopt;
    lay.key.push_back(static_cast<AttrNumber>(c + 1));
  }
  if (lay.key.empty()) return std::nullopt;
  Output out = pg::pg_call([&] { return write_rows(p.oid, lay, spi.context(), result, rows.rows, rows.n); });
  if (!out.done) return std::nullopt;
  if (!change.empty() && out.rows > 0)
    spi.keep_store(change, out.store, out.desc);
  else
    pg::pg_call([&] { tuplestore_end(out.store); });
  return out.rows;
}

std::optional<std::uint64_t> apply_keyed(pg::Spi& spi, const plan::ViewPlan& p, const std::string& change) {
  return apply_keyed(spi, p, change, spi.result());
}

}  // namespace ivm::apply

namespace ivm::apply {

bool lock_keys(pg::Spi& spi, const plan::ViewPlan& p, const plan::Changes& c) {
  if (p.keylock.empty()) return true;
  std::vector<KeySource> sources;
  for (const auto& [i, d] : c) {
    const plan::Leaf& l = p.leaves[static_cast<std::size_t>(i)];
    if (l.key.empty()) continue;
    std::string col = plan::key_column(l);
    if (col.empty()) return false;
    for (const std::string* name : {&d.inserted, &d.deleted, &d.bag}) {
      if (name->empty()) continue;
      KeySource src{nullptr, nullptr, 0};
      if (!spi.find_store(*name, src.store, src.desc)) return false;
      src.attno = pg::pg_call([&] {
        for (int a = 0; a < src.desc->natts; ++a)
          if (!TupleDescAttr(src.desc, a)->attisdropped && col == NameStr(TupleDescAttr(src.desc, a)->attname))
            return a + 1;
        return 0;
      });
      if (src.attno == 0) return false;
      sources.push_back(src);
    }
  }
  // Without a key class the view serializes on one row: the SQL statement.
  if (sources.empty()) return false;
  Oid keylock = pg::relation_oid(p.keylock);
  if (!OidIsValid(keylock)) return false;
  return pg::pg_call([&] { return lock_rows(keylock, sources.data(), static_cast<int>(sources.size())); });
}

}  // namespace ivm::apply

// load.cpp: a view filled from scratch, below SQL (see load.hpp).
#include "plan/sqlgen.hpp"  // plan headers first: they refuse to follow postgres.h
#include "apply/load.hpp"
#include "apply/maintain.hpp"
#include "apply/rows.hpp"

extern "C" {
#include "access/tableam.h"
}

namespace ivm::apply {

namespace {

// A batch is written when it holds this many rows or bytes (COPY FROM's own
// limits): large enough for a page of rows per WAL record, small enough that
// its copies of the rows stay in the CPU's caches.
constexpr int kBatchRows = 1000;
constexpr Size kBatchBytes = 65535;

// Sink: a table being filled, with its batch of rows not yet written.
// Plain data: it lives in PostgreSQL's memory, and the executor calls the
// receiver below, where an error longjmps away.
struct Sink {
  rows::Target target;
  int first;  // its first column in the query's rows (0-based)
  int natts;
  TupleTableSlot** slots;  // kBatchRows, created as needed
  int used;
  Size bytes;
  CommandId cid;
  int options;
  uint64 written;
};

// Loader: the query's DestReceiver.  Sinks: the state (aggregate views),
// then the view.
struct Loader {
  DestReceiver pub;  // first: the executor knows a Loader as a DestReceiver
  Sink sinks[2];
  int nsinks;
  int emit;  // the column saying whether a group has a view row, or -1
};

void flush(Sink& s) {
  if (s.used == 0) return;
  Relation rel = s.target.rel;
  EState* estate = s.target.estate;
  table_multi_insert(rel, s.slots, s.used, s.cid, s.options, nullptr);
  if (s.target.rri->ri_NumIndices > 0)
    for (int i = 0; i < s.used; ++i)
      list_free(ExecInsertIndexTuples(s.target.rri, s.slots[i], estate, false, false, nullptr, NIL));
  for (int i = 0; i < s.used; ++i) ExecClearTuple(s.slots[i]);
  ResetPerTupleExprContext(estate);
  s.written += static_cast<uint64>(s.used);
  s.used = 0;
  s.bytes = 0;
}

void put(Sink& s, TupleTableSlot* row) {
  EState* estate = s.target.estate;
  if (!s.slots[s.used]) {
    MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);
    s.slots[s.used] = table_slot_create(s.target.rel, &estate->es_tupleTable);
    MemoryContextSwitchTo(old);
  }
  TupleTableSlot* slot = s.slots[s.used];
  ExecClearTuple(slot);
  for (int i = 0; i < s.natts; ++i) {
    slot->tts_values[i] = row->tts_values[s.first + i];
    slot->tts_isnull[i] = row->tts_isnull[s.first + i];
  }
  ExecStoreVirtualTuple(slot);
  // Copied out of the executor's per-row memory into the slot's own.
  ExecMaterializeSlot(slot);
  if (s.target.rel->rd_att->constr) ExecConstraints(s.target.rri, slot, estate);
  if (TTS_IS_BUFFERTUPLE(slot)) s.bytes += reinterpret_cast<BufferHeapTupleTableSlot*>(slot)->base.tuple->t_len;
  if (++s.used == kBatchRows || s.bytes >= kBatchBytes) flush(s);
}

bool receive(TupleTableSlot* row, DestReceiver* self) {
  Loader* l = reinterpret_cast<Loader*>(self);
  slot_getallattrs(row);
  bool emit = l->emit < 0 || (!row->tts_isnull[l->emit] && DatumGetBool(row->tts_values[l->emit]));
  for (int k = 0; k < l->nsinks; ++k)
    if (k < l->nsinks - 1 || emit) put(l->sinks[k], row);
  return true;
}

void startup(DestReceiver* self, int, TupleDesc) {
  Loader* l = reinterpret_cast<Loader*>(self);
  // The query has its command id now (SPI advanced it): its rows are written
  // under it, invisible to the query itself, as an INSERT's would be.
  for (int k = 0; k < l->nsinks; ++k) l->sinks[k].cid = GetCurrentCommandId(true);
}

void shutdown(DestReceiver* self) {
  Loader* l = reinterpret_cast<Loader*>(self);
  for (int k = 0; k < l->nsinks; ++k) flush(l->sinks[k]);
}

void destroy(DestReceiver*) {}

// accepts: whether the query's rows fit the sinks' tables as they are.
bool accepts(TupleDesc rows, void* arg) {
  Loader* l = static_cast<Loader*>(arg);
  const Sink& last = l->sinks[l->nsinks - 1];
  if (rows->natts != last.first + last.natts + (l->emit >= 0 ? 1 : 0)) return false;
  if (l->emit >= 0 && TupleDescAttr(rows, l->emit)->atttypid != BOOLOID) return false;
  for (int k = 0; k < l->nsinks; ++k) {
    const Sink& s = l->sinks[k];
    TupleDesc desc = RelationGetDescr(s.target.rel);
    for (int i = 0; i < s.natts; ++i)
      if (!rows::holds(TupleDescAttr(desc, i), TupleDescAttr(rows, s.first + i), true)) return false;
  }
  return true;
}

// open_sink: `relid` opened for a fill from column `first` of the query's
// rows; false (nothing kept open) when it is not a plain table the caller
// may insert into.
bool open_sink(Sink& s, Oid relid, int first) {
  s = Sink{};
  rows::open_target(s.target, relid);
  if (!rows::plain(s.target.rel, ACL_INSERT)) {
    rows::close_target(s.target);
    return false;
  }
  s.first = first;
  s.natts = RelationGetDescr(s.target.rel)->natts;
  s.slots = static_cast<TupleTableSlot**>(palloc0(sizeof(TupleTableSlot*) * kBatchRows));
  // No BulkInsertState: its ring of buffers would push each page written out
  // of shared buffers at once, for the index builds (and the first
  // maintenance) to read back.  A batch fills whole pages anyway.
  // A table created by this transaction has no free space before its end
  // worth looking up (what CREATE TABLE AS skips too).
  s.options = s.target.rel->rd_createSubid != InvalidSubTransactionId ? TABLE_INSERT_SKIP_FSM : 0;
  return true;
}

void close_sink(Sink& s) {
  table_finish_bulk_insert(s.target.rel, s.options);
  rows::close_target(s.target);
}

// start: a loader into `relids` (the state, then the view), or nullptr.
Loader* start(const Oid* relids, int n, const plan::Populate& pop) {
  auto* l = static_cast<Loader*>(palloc0(sizeof(Loader)));
  l->pub.receiveSlot = receive;
  l->pub.rStartup = startup;
  l->pub.rShutdown = shutdown;
  l->pub.rDestroy = destroy;
  l->pub.mydest = DestNone;
  l->emit = pop.state_columns > 0 ? static_cast<int>(pop.state_columns + pop.view_columns) : -1;
  int first = 0;
  for (int k = 0; k < n; ++k) {
    if (!open_sink(l->sinks[k], relids[k], first)) {
      for (int j = 0; j < k; ++j) rows::close_target(l->sinks[j].target);
      return nullptr;
    }
    first += l->sinks[k].natts;
    l->nsinks = k + 1;
  }
  return l;
}

}  // namespace

std::uint64_t populate(pg::Spi& spi, const plan::ViewPlan& p) {
  plan::Populate pop = plan::sql_populate(p);
  Oid relids[2];
  int n = 0;
  if (p.aggregate) relids[n++] = pg::relation_oid(p.state);
  relids[n++] = pg::relation_oid(p.name);
  Loader* l = pg::pg_call([&] { return start(relids, n, pop); });
  if (l) {
    bool loaded = spi.exec_into(pop.rows, &l->pub, accepts, l);
    pg::pg_call([&] {
      for (int k = 0; k < l->nsinks; ++k) close_sink(l->sinks[k]);
    });
    if (loaded) {
      took(Path::ViewFilledBelowSql);
      return l->sinks[n - 1].written;
    }
  }
  took(Path::ViewFilledByStatement);
  std::uint64_t rows = 0;
  for (const auto& sql : pop.statements) rows = spi.exec_once(sql);
  return rows;
}

}  // namespace ivm::apply

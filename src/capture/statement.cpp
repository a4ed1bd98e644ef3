// statement.cpp: executor hooks tracking statement nesting, and the buffer of
// changes maintained when their enclosing statement finishes.
#include "apply/maintain.hpp"  // plan headers first: they refuse to follow postgres.h
#include "capture/statement.hpp"
#include "capture/transaction.hpp"

#include <functional>
#include <map>

namespace ivm::capture {

namespace {

// Frame: one ExecutorRun or ExecutorFinish in progress.  A fixed array: the
// hooks run in C frames, where nothing may throw.
struct Frame {
  QueryDesc* query;
  bool modifies;  // INSERT/UPDATE/DELETE/MERGE, or a data-modifying CTE
  bool multi;     // several tables may change in this one statement
};
constexpr int kMaxFrames = 1024;
Frame frames[kMaxFrames];
int depth = 0;

struct Pending {
  MemoryContext cxt = nullptr;
  Buffered changes;
};

std::map<QueryDesc*, Pending>& pending() {
  static std::map<QueryDesc*, Pending> p;
  return p;
}

ExecutorRun_hook_type prev_run = nullptr;
ExecutorFinish_hook_type prev_finish = nullptr;

void push(QueryDesc* q) {
  if (depth >= kMaxFrames) elog(ERROR, "ivm: statements nested too deeply");
  PlannedStmt* ps = q->plannedstmt;
  bool cte = ps && ps->hasModifyingCTE;
  bool modifies = q->operation != CMD_SELECT || cte;
  // INSERT ... ON CONFLICT DO UPDATE and MERGE fire several statement
  // triggers (insert, update, delete) on one table: their changes belong
  // together as much as those of a data-modifying CTE.
  bool upsert = ps && ps->planTree && IsA(ps->planTree, ModifyTable) &&
                reinterpret_cast<ModifyTable*>(ps->planTree)->onConflictAction == ONCONFLICT_UPDATE;
  frames[depth++] = Frame{q, modifies, cte || upsert || q->operation == CMD_MERGE};
}

void drop_pending(QueryDesc* q) noexcept {
  auto& p = pending();
  auto it = p.find(q);
  if (it != p.end()) p.erase(it);  // its memory belongs to the (aborting) transaction
}

// flush: maintains every buffered change of statement q together.
void flush(QueryDesc* q) {
  auto& all = pending();
  auto it = all.find(q);
  if (it == all.end()) return;
  Pending p = std::move(it->second);
  all.erase(it);
  if (!adopt_statement(p.changes)) maintain_buffered(p.changes);
  pg::pg_call([&] {
    for (const auto& [relid, st] : p.changes) {
      if (st.inserted) tuplestore_end(st.inserted);
      if (st.deleted) tuplestore_end(st.deleted);
    }
    MemoryContextDelete(p.cxt);
  });
}

void ivm_executor_run(QueryDesc* q, ScanDirection direction, uint64 count, bool execute_once) {
  push(q);
  PG_TRY();
  {
    if (prev_run)
      prev_run(q, direction, count, execute_once);
    else
      standard_ExecutorRun(q, direction, count, execute_once);
  }
  PG_FINALLY();
  { depth--; }
  PG_END_TRY();
}

void ivm_executor_finish(QueryDesc* q) {
  push(q);
  PG_TRY();
  {
    if (prev_finish)
      prev_finish(q);
    else
      standard_ExecutorFinish(q);
    // Every trigger of the statement has fired: maintain what it buffered
    // (C++ errors become an ereport once the C++ frames are gone).
    if (pending().count(q)) pg::cpp_callback([q] { flush(q); });
  }
  PG_CATCH();
  {
    depth--;
    drop_pending(q);
    PG_RE_THROW();
  }
  PG_END_TRY();
  depth--;
}

}  // namespace

void install_hooks() {
  prev_run = ExecutorRun_hook;
  ExecutorRun_hook = ivm_executor_run;
  prev_finish = ExecutorFinish_hook;
  ExecutorFinish_hook = ivm_executor_finish;
}

bool buffering() { return !pending().empty(); }

void reset() {
  depth = 0;
  pending().clear();
}

void maintain_buffered(const Buffered& changes) {
  pg::Spi spi;
  pg::PinnedSearchPath pinned;
  apply::Changed changed;
  std::uint64_t rows = 0;
  for (const auto& [relid, st] : changes) {
    plan::DeltaSource d;
    // The name carries the row type (columns can be dropped between two
    // statements): a cached plan must never meet another shape under it.
    TupleDesc desc = st.inserted ? st.inserted_desc : st.deleted_desc;
    std::string shape;
    for (int i = 0; i < desc->natts; i++)
      shape += std::string(NameStr(TupleDescAttr(desc, i)->attname)) + ":" +
               std::to_string(TupleDescAttr(desc, i)->atttypid) + ",";
    std::string base =
        "ivm_pending_" + std::to_string(relid) + "_" + std::to_string(std::hash<std::string>{}(shape) % 1000000);
    if (st.inserted) {
      d.inserted = base + "_new";
      rows += static_cast<std::uint64_t>(tuplestore_tuple_count(st.inserted));
      spi.register_store(d.inserted, st.inserted, st.inserted_desc);
    }
    if (st.deleted) {
      d.deleted = base + "_old";
      rows += static_cast<std::uint64_t>(tuplestore_tuple_count(st.deleted));
      spi.register_store(d.deleted, st.deleted, st.deleted_desc);
    }
    changed[relid] = d;
  }
  apply::LargeBatch settings(spi, rows);
  apply::propagate(spi, changed, apply::Phase::Write);
}

void copy_rows(MemoryContext cxt, Tuplestorestate*& store, TupleDesc& desc, Tuplestorestate* from,
               TupleDesc from_desc) {
  pg::pg_call([&] {
    MemoryContext old = MemoryContextSwitchTo(cxt);
    if (!store) {
      store = tuplestore_begin_heap(false, false, work_mem);
      desc = CreateTupleDescCopy(from_desc);
    }
    TupleTableSlot* slot = MakeSingleTupleTableSlot(from_desc, &TTSOpsMinimalTuple);
    pg::begin_own_scan(from);
    while (tuplestore_gettupleslot(from, true, false, slot)) {
      CHECK_FOR_INTERRUPTS();
      tuplestore_puttupleslot(store, slot);
    }
    pg::end_own_scan(from);
    ExecDropSingleTupleTableSlot(slot);
    MemoryContextSwitchTo(old);
  });
}

bool statement_under_way() {
  for (int i = 0; i < depth; ++i)
    if (frames[i].modifies) return true;
  return false;
}

namespace {

// targets: whether relation relid is a result relation of statement q.
bool targets(QueryDesc* q, Oid relid) {
  if (!q->plannedstmt) return false;
  ListCell* lc;
  foreach (lc, q->plannedstmt->resultRelations) {
    RangeTblEntry* rte = rt_fetch(lfirst_int(lc), q->plannedstmt->rtable);
    if (rte->relid == relid) return true;
  }
  return false;
}

// may_cascade: whether changing rel can change other tables within the same
// statement: foreign-key actions and user triggers (ivm's own triggers and
// foreign-key checks only read).
bool may_cascade(Relation rel) {
  TriggerDesc* desc = rel->trigdesc;
  if (!desc) return false;
  for (int i = 0; i < desc->numtriggers; i++) {
    const Trigger& t = desc->triggers[i];
    if (strncmp(t.tgname, "ivm_", 4) == 0) continue;
    if (t.tgfoid == F_RI_FKEY_CHECK_INS || t.tgfoid == F_RI_FKEY_CHECK_UPD) continue;
    return true;
  }
  return false;
}

}  // namespace

bool has_user_triggers(Oid relid) {
  return pg::pg_call([&] {
    Relation rel = RelationIdGetRelation(relid);
    if (!RelationIsValid(rel)) return false;
    bool any = may_cascade(rel);
    RelationClose(rel);
    return any;
  });
}

bool buffer_if_nested(TriggerData* td) {
  // Statement triggers fire inside the ExecutorFinish of the statement that
  // queued them (the top frame).  Their change belongs to a larger statement
  // when (1) an enclosing data-modifying statement is still under way below
  // the top frame (a trigger's or function's own DML), or (2) the top
  // statement did not target this table itself (a foreign-key action, whose
  // triggers fire in the outer statement), or (3) the top statement may
  // still change other tables (a data-modifying CTE, cascading foreign keys,
  // user triggers), or already buffered something.
  Oid relid = RelationGetRelid(td->tg_relation);
  QueryDesc* target = nullptr;
  for (int i = 0; i < depth - 1 && !target; ++i)
    if (frames[i].modifies) target = frames[i].query;
  if (!target && depth > 0) {
    const Frame& top = frames[depth - 1];
    bool joint = pg::pg_call(
        [&] { return top.modifies && (top.multi || !targets(top.query, relid) || may_cascade(td->tg_relation)); });
    if (joint || pending().count(top.query)) target = top.query;
  }
  if (!target) return false;
  Pending& p = pending()[target];
  if (!p.cxt)
    p.cxt = pg::pg_call(
        [] { return AllocSetContextCreate(TopTransactionContext, "ivm pending changes", ALLOCSET_DEFAULT_SIZES); });
  Stores& st = p.changes[relid];
  TupleDesc rowtype = RelationGetDescr(td->tg_relation);
  if (td->tg_newtable) copy_rows(p.cxt, st.inserted, st.inserted_desc, td->tg_newtable, rowtype);
  if (td->tg_oldtable) copy_rows(p.cxt, st.deleted, st.deleted_desc, td->tg_oldtable, rowtype);
  return true;
}

}  // namespace ivm::capture

// transaction.cpp: the buffer of a transaction's changes (see
// transaction.hpp), its flush points, and how savepoints unwind it.
#include "apply/maintain.hpp"  // plan headers first: they refuse to follow postgres.h
#include "capture/statement.hpp"
#include "capture/transaction.hpp"
#include "catalog/catalog.hpp"

extern "C" {
#include "tcop/utility.h"
#include "utils/resowner.h"
}

#include <algorithm>
#include <map>
#include <optional>
#include <vector>

namespace ivm::capture {

namespace {

enum ApplyAt { kStatement, kTransaction };
int apply_at = kStatement;
const struct config_enum_entry apply_at_options[] = {
    {"statement", kStatement, false}, {"transaction", kTransaction, false}, {nullptr, 0, false}};

// Segment: the change of one base table made by statements of one
// subtransaction.  Once maintained inside a subtransaction it is kept
// (flushed_in) until that subtransaction's fate is known: if it rolls back,
// the maintenance is undone with it, and the change is pending again.
struct Segment {
  std::uint32_t relid;
  SubTransactionId origin;
  SubTransactionId flushed_in;  // InvalidSubTransactionId while pending
  Stores stores;
  std::uint64_t rows;
};

// The buffer lives in TopTransactionContext; its temporary files (a large
// change spills) belong to the top transaction's resource owner, so that
// neither the end of a statement's portal nor a subtransaction closes them.
MemoryContext buffer_cxt = nullptr;
std::vector<Segment> segments;
std::uint64_t pending_rows = 0;
int pending_segments = 0;
bool flushing = false;

ExecutorStart_hook_type prev_start = nullptr;
ProcessUtility_hook_type prev_utility = nullptr;

bool batching() { return apply_at == kTransaction; }
bool pending() { return pending_segments > 0; }

template <typename P>
void drop_if(P pred) {
  segments.erase(std::remove_if(segments.begin(), segments.end(), pred), segments.end());
}

void end_stores(Segment& s) noexcept {
  if (s.stores.inserted) tuplestore_end(s.stores.inserted);
  if (s.stores.deleted) tuplestore_end(s.stores.deleted);
  s.stores = Stores{};
}

// TopOwner: while alive, new temporary files belong to the top transaction.
class TopOwner {
 public:
  TopOwner() : saved_(CurrentResourceOwner) { CurrentResourceOwner = TopTransactionResourceOwner; }
  ~TopOwner() { CurrentResourceOwner = saved_; }
  TopOwner(const TopOwner&) = delete;
  TopOwner& operator=(const TopOwner&) = delete;

 private:
  ResourceOwner saved_;
};

// segment_for: the pending segment of relid made in the current
// subtransaction, created if there is none.
Segment& segment_for(std::uint32_t relid) {
  if (!buffer_cxt)
    buffer_cxt = pg::pg_call(
        [] { return AllocSetContextCreate(TopTransactionContext, "ivm transaction changes", ALLOCSET_DEFAULT_SIZES); });
  SubTransactionId sub = pg::pg_call([] { return GetCurrentSubTransactionId(); });
  for (auto it = segments.rbegin(); it != segments.rend(); ++it)
    if (it->relid == relid && it->origin == sub && it->flushed_in == InvalidSubTransactionId) return *it;
  segments.push_back(Segment{relid, sub, InvalidSubTransactionId, Stores{}, 0});
  ++pending_segments;
  return segments.back();
}

void append(std::uint32_t relid, Tuplestorestate* inserted, Tuplestorestate* deleted, TupleDesc rowtype) {
  Segment& s = segment_for(relid);
  TopOwner owner;
  std::uint64_t before = s.rows;
  if (inserted) copy_rows(buffer_cxt, s.stores.inserted, s.stores.inserted_desc, inserted, rowtype);
  if (deleted) copy_rows(buffer_cxt, s.stores.deleted, s.stores.deleted_desc, deleted, rowtype);
  s.rows = pg::pg_call([&] {
    return static_cast<std::uint64_t>((s.stores.inserted ? tuplestore_tuple_count(s.stores.inserted) : 0) +
                                      (s.stores.deleted ? tuplestore_tuple_count(s.stores.deleted) : 0));
  });
  pending_rows += s.rows - before;
}

// Flushing: marks a flush under way (changes that its maintenance causes,
// through triggers on views' tables, are maintained as they happen).
class Flushing {
 public:
  Flushing() { flushing = true; }
  ~Flushing() { flushing = false; }
  Flushing(const Flushing&) = delete;
  Flushing& operator=(const Flushing&) = delete;
};

void flush() {
  if (flushing || !pending()) return;
  Flushing mark;
  // One change per base table.  A table changed in several subtransactions
  // has its segments' rows copied together; the segments keep theirs, in
  // case a rollback puts them back.
  std::map<std::uint32_t, std::vector<const Segment*>> parts;
  for (const Segment& s : segments)
    if (s.flushed_in == InvalidSubTransactionId) parts[s.relid].push_back(&s);
  Buffered changes;
  std::vector<Tuplestorestate*> merged;
  {
    TopOwner owner;
    for (const auto& [relid, list] : parts) {
      if (list.size() == 1) {
        changes[relid] = list.front()->stores;
        continue;
      }
      Stores& into = changes[relid];
      for (const Segment* s : list) {
        if (s->stores.inserted)
          copy_rows(buffer_cxt, into.inserted, into.inserted_desc, s->stores.inserted, s->stores.inserted_desc);
        if (s->stores.deleted)
          copy_rows(buffer_cxt, into.deleted, into.deleted_desc, s->stores.deleted, s->stores.deleted_desc);
      }
      if (into.inserted) merged.push_back(into.inserted);
      if (into.deleted) merged.push_back(into.deleted);
    }
  }
  maintain_buffered(changes);
  pg::pg_call([&] {
    for (Tuplestorestate* t : merged) tuplestore_end(t);
    SubTransactionId sub = GetCurrentSubTransactionId();
    for (Segment& s : segments)
      if (s.flushed_in == InvalidSubTransactionId) {
        s.flushed_in = sub;
        if (sub == TopSubTransactionId) end_stores(s);
      }
  });
  drop_if([](const Segment& s) { return s.flushed_in == TopSubTransactionId; });
  pending_segments = 0;
  pending_rows = 0;
}

// flush_then_see: flushes before a statement reads, and lets the snapshot
// it reads with (`snapshot`, may be null) see the maintained rows.  A
// snapshot taken before the flush does not: its command id predates the
// maintenance.  Raising the command id is only sound when no data-modifying
// statement is under way: such a statement would see its own changes (the
// snapshot may be its own, shared by a STABLE function it calls), and its
// change so far is neither captured nor undone, so maintaining the earlier
// changes now would join them with part of it.
void flush_then_see(Snapshot snapshot, const char* what) {
  if (statement_under_way())
    throw pg::Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                    std::string("cannot ") + what +
                        " inside a data-modifying statement while the transaction's earlier changes await "
                        "maintenance",
                    "ivm.immediate_apply is 'transaction': what the transaction changed is maintained before a "
                    "statement that could see the incremental views starts, and a statement under way cannot "
                    "wait for that.",
                    "SET ivm.immediate_apply = 'statement' for this transaction, or run this in a statement of "
                    "its own.");
  flush();
  pg::pg_call([&] {
    CommandCounterIncrement();
    if (snapshot) snapshot->curcid = GetCurrentCommandId(false);
  });
}

// reads_view: whether statement q reads the table of an incremental view.
bool reads_view(QueryDesc* q) {
  PlannedStmt* ps = q->plannedstmt;
  if (!ps) return false;
  const std::set<std::uint32_t>* views = catalog::cached_view_tables();
  std::optional<pg::Spi> spi;
  if (!views) {
    // Reading ivm's catalog starts a statement too: it must not come back here.
    Flushing busy;
    spi.emplace();
    views = &catalog::view_tables(*spi);
  }
  ListCell* lc;
  foreach (lc, ps->rtable) {
    auto* rte = static_cast<RangeTblEntry*>(lfirst(lc));
    if (rte->rtekind == RTE_RELATION && views->count(rte->relid)) return true;
  }
  return false;
}

// writes_through_triggers: whether statement q changes a table with
// triggers other than ivm's and foreign-key checks (a trigger may read a
// view while the statement is under way: flushed before it starts).
bool writes_through_triggers(QueryDesc* q) {
  PlannedStmt* ps = q->plannedstmt;
  if (!ps) return false;
  ListCell* lc;  // every ModifyTable's target, data-modifying CTEs' included
  foreach (lc, ps->resultRelations) {
    RangeTblEntry* rte = rt_fetch(lfirst_int(lc), ps->rtable);
    if (has_user_triggers(rte->relid)) return true;
  }
  return false;
}

void ivm_executor_start(QueryDesc* q, int eflags) {
  if (pending() && !flushing && !(eflags & EXEC_FLAG_EXPLAIN_ONLY))
    pg::cpp_callback([&] {
      bool reads = reads_view(q);
      if (reads || writes_through_triggers(q))
        flush_then_see(q->snapshot, reads ? "read an incremental view" : "change a table that has triggers");
    });
  if (prev_start)
    prev_start(q, eflags);
  else
    standard_ExecutorStart(q, eflags);
}

// flushes_before: utility statements that may read or change what the
// views depend on (DDL, COPY, TRUNCATE, LOCK, ...).  Those that only steer
// the session or run statements of their own (which flush for themselves)
// do not flush.
bool flushes_before(Node* stmt) {
  switch (nodeTag(stmt)) {
    case T_TransactionStmt:
    case T_ExecuteStmt:
    case T_PrepareStmt:
    case T_DeallocateStmt:
    case T_VariableSetStmt:
    case T_VariableShowStmt:
    case T_DoStmt:
    case T_CallStmt:
    case T_DeclareCursorStmt:
    case T_FetchStmt:
    case T_ClosePortalStmt:
    case T_ExplainStmt:
    case T_NotifyStmt:
    case T_ListenStmt:
    case T_UnlistenStmt: return false;
    default: return true;
  }
}

void ivm_process_utility(PlannedStmt* pstmt, const char* query, bool read_only_tree, ProcessUtilityContext context,
                         ParamListInfo params, QueryEnvironment* env, DestReceiver* dest, QueryCompletion* qc) {
  if (pending() && !flushing && flushes_before(pstmt->utilityStmt))
    pg::cpp_callback(
        [&] { flush_then_see(ActiveSnapshotSet() ? GetActiveSnapshot() : nullptr, "run a utility command"); });
  if (prev_utility)
    prev_utility(pstmt, query, read_only_tree, context, params, env, dest, qc);
  else
    standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc);
}

void forget() noexcept {
  segments.clear();
  buffer_cxt = nullptr;  // freed with TopTransactionContext
  pending_rows = 0;
  pending_segments = 0;
  flushing = false;
}

void on_xact(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_PRE_COMMIT:
    case XACT_EVENT_PRE_PREPARE:
      if (!pending()) return;
      // COMMIT runs with no snapshot; maintenance reads with the
      // transaction's (statements take fresh ones under READ COMMITTED).
      PushActiveSnapshot(GetTransactionSnapshot());
      pg::cpp_callback([] { flush(); });
      PopActiveSnapshot();
      // No deferred trigger can have been queued after the transaction fired
      // its own: maintenance runs as a security-restricted operation, where
      // PostgreSQL refuses to queue them.
      return;
    default:
      if (pg::xact_ended(event)) forget();
      return;
  }
}

void on_subxact(SubXactEvent event, SubTransactionId sub, SubTransactionId parent, void*) {
  if (segments.empty()) return;
  if (event == SUBXACT_EVENT_ABORT_SUB) {
    // Its statements' changes are undone: out of the buffer.  What a
    // maintenance inside it consumed is pending again (undone too).
    for (Segment& s : segments) {
      if (s.origin == sub) {
        if (s.flushed_in == InvalidSubTransactionId) {
          --pending_segments;
          pending_rows -= s.rows;
        }
        end_stores(s);
      } else if (s.flushed_in == sub) {
        s.flushed_in = InvalidSubTransactionId;
        ++pending_segments;
        pending_rows += s.rows;
      }
    }
    drop_if([sub](const Segment& s) { return s.origin == sub; });
  } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
    for (Segment& s : segments) {
      if (s.origin == sub) s.origin = parent;
      if (s.flushed_in == sub) s.flushed_in = parent;
      if (s.flushed_in == TopSubTransactionId) end_stores(s);
    }
    drop_if([](const Segment& s) { return s.flushed_in == TopSubTransactionId; });
  }
}

// take: appends a change (append_all) to the buffer when the transaction's
// changes are maintained together, or when changes wait (they must not be
// overtaken); false when the caller must maintain it now (a change caused by
// a flush's own maintenance, or nothing waits in mode 'statement').  A
// large change is maintained at once, with the settings for its size, as a
// statement's would be, and so is any change in mode 'statement'.  (A table
// with other triggers never reaches the buffer from its trigger: its
// statement's changes are buffered for the statement's end, statement.cpp,
// then handed over by adopt_statement.)
template <typename F>
bool take(F&& append_all) {
  if (flushing) return false;
  bool batch = batching();
  if (!batch && !pending()) return false;
  append_all();
  if (!batch || pending_rows > apply::LargeBatch::kLargeBatch) flush();
  return true;
}

}  // namespace

void transaction_init() {
  DefineCustomEnumVariable(
      "ivm.immediate_apply", "When immediate views take a transaction's changes.",
      "'statement': at the end of each statement.  'transaction': together, before the transaction next reads an "
      "incremental view (or runs a utility command) and at commit.",
      &apply_at, kStatement, apply_at_options, PGC_USERSET, 0, nullptr, nullptr, nullptr);
  prev_start = ExecutorStart_hook;
  ExecutorStart_hook = ivm_executor_start;
  prev_utility = ProcessUtility_hook;
  ProcessUtility_hook = ivm_process_utility;
  RegisterXactCallback(on_xact, nullptr);
  RegisterSubXactCallback(on_subxact, nullptr);
}

bool buffer_for_transaction(TriggerData* td) {
  return take([td] {
    append(RelationGetRelid(td->tg_relation), td->tg_newtable, td->tg_oldtable, RelationGetDescr(td->tg_relation));
  });
}

bool adopt_statement(Buffered& changes) {
  return take([&changes] {
    for (const auto& [relid, st] : changes)
      append(relid, st.inserted, st.deleted, st.inserted ? st.inserted_desc : st.deleted_desc);
  });
}

void flush_transaction() {
  if (pending() && !flushing) flush_then_see(nullptr, "run an ivm function");
}

}  // namespace ivm::capture

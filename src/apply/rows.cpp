// rows.cpp: single-row access below SQL (see rows.hpp).
#include "apply/rows.hpp"

extern "C" {
#include "access/genam.h"
#include "access/nbtree.h"
#include "access/tableam.h"
#include "catalog/pg_am.h"
#include "catalog/pg_trigger.h"
#include "utils/acl.h"
}

namespace ivm::apply::rows {

bool plain(Relation rel, AclMode rights) {
  if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relhassubclass || rel->rd_rel->relispartition ||
      rel->rd_rel->relrowsecurity || rel->rd_rules)
    return false;
  if (pg_class_aclmask(RelationGetRelid(rel), GetUserId(), rights, ACLMASK_ALL) != rights) return false;
  if (TriggerDesc* td = rel->trigdesc)
    if (td->numtriggers != 1 || strcmp(td->triggers[0].tgname, "ivm_guard") != 0 ||
        TRIGGER_FOR_ROW(td->triggers[0].tgtype))
      return false;
  TupleDesc desc = RelationGetDescr(rel);
  return !(desc->constr && desc->constr->has_generated_stored);
}

bool holds(Form_pg_attribute column, Form_pg_attribute value, bool typmod) {
  return !column->attisdropped && column->atttypid == value->atttypid &&
         get_typtype(column->atttypid) != TYPTYPE_DOMAIN &&
         (!typmod || column->atttypmod < 0 || column->atttypmod == value->atttypmod);
}

int attno(TupleDesc desc, const char* name) {
  for (int a = 0; a < desc->natts; ++a)
    if (!TupleDescAttr(desc, a)->attisdropped && strcmp(NameStr(TupleDescAttr(desc, a)->attname), name) == 0)
      return a + 1;
  return 0;
}

int attno(TupleDesc desc, const char* prefix, int i) {
  char name[NAMEDATALEN];
  snprintf(name, sizeof(name), "%s%d", prefix, i);
  return attno(desc, name);
}

void open_target(Target& t, Oid relid, bool speculative) {
  t.rel = table_open(relid, RowExclusiveLock);
  t.estate = CreateExecutorState();
  RangeTblEntry* rte = makeNode(RangeTblEntry);
  rte->rtekind = RTE_RELATION;
  rte->relid = relid;
  rte->relkind = t.rel->rd_rel->relkind;
  rte->rellockmode = RowExclusiveLock;
  ExecInitRangeTable(t.estate, list_make1(rte));
  t.rri = makeNode(ResultRelInfo);
  InitResultRelInfo(t.rri, t.rel, 1, nullptr, 0);
  ExecOpenIndices(t.rri, speculative);
}

void begin_writes(Target& t) {
  CommandCounterIncrement();
  t.estate->es_output_cid = GetCurrentCommandId(true);
  t.snapshot = RegisterSnapshot(GetLatestSnapshot());
  EvalPlanQualInit(&t.epq, t.estate, nullptr, NIL, -1);
}

void close_target(Target& t) {
  if (t.snapshot) {
    EvalPlanQualEnd(&t.epq);
    UnregisterSnapshot(t.snapshot);
    // Later statements see the rows written.
    CommandCounterIncrement();
  }
  ExecCloseIndices(t.rri);
  ExecResetTupleTable(t.estate->es_tupleTable, false);
  FreeExecutorState(t.estate);
  table_close(t.rel, NoLock);
}

RegProcedure* equality_procs(Relation index, int nkeys) {
  auto* eq = static_cast<RegProcedure*>(palloc(sizeof(RegProcedure) * static_cast<std::size_t>(nkeys)));
  for (int k = 0; k < nkeys; ++k) {
    Oid type = index->rd_opcintype[k];
    Oid op = get_opfamily_member(index->rd_opfamily[k], type, type, BTEqualStrategyNumber);
    if (!OidIsValid(op))
      elog(ERROR, "no equality operator for index column %d of \"%s\"", k + 1, RelationGetRelationName(index));
    eq[k] = get_opcode(op);
  }
  return eq;
}

Relation key_index(const Target& t, const AttrNumber* attnums, int nkeys) {
  ResultRelInfo* rri = t.rri;
  for (int i = 0; i < rri->ri_NumIndices; ++i) {
    IndexInfo* ii = rri->ri_IndexRelationInfo[i];
    if (ii->ii_Am != BTREE_AM_OID || ii->ii_Expressions != NIL || ii->ii_Predicate != NIL ||
        ii->ii_NumIndexKeyAttrs != nkeys || !ii->ii_ReadyForInserts)
      continue;
    bool same = rri->ri_IndexRelationDescs[i]->rd_index->indisvalid;
    for (int k = 0; k < nkeys && same; ++k) same = ii->ii_IndexAttrNumbers[k] == attnums[k];
    if (same) return rri->ri_IndexRelationDescs[i];
  }
  return nullptr;
}

void set_key(ScanKeyData* keys, int k, Relation index, const RegProcedure* eq, Datum value, bool isnull) {
  if (isnull)
    ScanKeyEntryInitialize(&keys[k], SK_ISNULL | SK_SEARCHNULL, static_cast<AttrNumber>(k + 1), InvalidStrategy,
                           InvalidOid, index->rd_indcollation[k], InvalidOid, static_cast<Datum>(0));
  else
    ScanKeyInit(&keys[k], static_cast<AttrNumber>(k + 1), BTEqualStrategyNumber, eq[k], value);
  keys[k].sk_collation = index->rd_indcollation[k];
}

bool probe(const Target& t, Relation index, ScanKeyData* keys, int nkeys, TupleTableSlot* found) {
  IndexScanDesc scan = index_beginscan(t.rel, index, t.snapshot, nkeys, 0);
  index_rescan(scan, keys, nkeys, nullptr, 0);
  bool has = index_getnext_slot(scan, ForwardScanDirection, found);
  index_endscan(scan);
  return has;
}

namespace {

TM_Result lock_tuple(const Target& t, TupleTableSlot* found) {
  TM_FailureData tmfd;
  return table_tuple_lock(t.rel, &found->tts_tid, t.snapshot, found, t.estate->es_output_cid, LockTupleExclusive,
                          LockWaitBlock, TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &tmfd);
}

}  // namespace

bool lock_latest(const Target& t, TupleTableSlot* found) { return lock_tuple(t, found) == TM_Ok; }

NewRow insert_new(const Target& t, Relation index, TupleTableSlot* fresh, TupleTableSlot* found) {
  // ExecInsert's speculative insertion, with `index` the arbiter.
  List* arbiters = list_make1_oid(RelationGetRelid(index));
  if (t.rel->rd_att->constr) ExecConstraints(t.rri, fresh, t.estate);
  for (;;) {
    ItemPointerData conflict;
    // A row with the key, committed or ours (waiting for a writer inserting it).
    if (!ExecCheckIndexConstraints(t.rri, fresh, t.estate, &conflict, arbiters)) {
      found->tts_tid = conflict;
      TM_Result r = lock_tuple(t, found);
      if (r == TM_Ok) return NewRow::Found;
      // Deleted meanwhile: try again.  (A row of this very command would
      // be found again and again: the caller inserts each key once.)
      if (r != TM_Deleted && r != TM_Updated)
        elog(ERROR, "could not lock the row of a key of \"%s\" (result %d)", RelationGetRelationName(t.rel),
             static_cast<int>(r));
      ExecClearTuple(found);
      continue;
    }
    TransactionId xid = GetCurrentTransactionId();
    uint32 token = SpeculativeInsertionLockAcquire(xid);
    table_tuple_insert_speculative(t.rel, fresh, t.estate->es_output_cid, 0, nullptr, token);
    bool conflicted = false;
    List* recheck = ExecInsertIndexTuples(t.rri, fresh, t.estate, false, true, &conflicted, arbiters);
    table_tuple_complete_speculative(t.rel, fresh, token, !conflicted);
    SpeculativeInsertionLockRelease(xid);
    list_free(recheck);
    if (!conflicted) return NewRow::Inserted;
  }
}

}  // namespace ivm::apply::rows

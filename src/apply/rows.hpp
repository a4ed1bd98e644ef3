// rows.hpp: a table's rows found and written one by one, below SQL, through
// the executor's single-row routines (those logical replication applies rows
// with: constraints, unique checks, every index).  Shared by the writes of a
// view's rows by key (keyed.cpp), its key locks, and the merge of its
// aggregate state (merge.cpp).  PostgreSQL's terms throughout: call under
// pg::pg_call, and own no C++ object meanwhile.
#pragma once
#include "pg/pg.hpp"

namespace ivm::apply::rows {

// Target: a table opened for writing, with its indexes.
struct Target {
  Relation rel = nullptr;
  EState* estate = nullptr;
  ResultRelInfo* rri = nullptr;
  EPQState epq;
  Snapshot snapshot = nullptr;
};

// plain: whether `rel` is a plain table the caller may write below SQL with
// `rights` (the statements would check them: an owner can revoke their own),
// where nothing but the row itself happens on a write: not partitioned nor
// inherited, no trigger but ivm's guard (a statement trigger for users' own
// writes), no rule, no row security, no stored generated column.
bool plain(Relation rel, AclMode rights);
// holds: whether column `column` takes a value of `value`'s type as it is:
// the same type, not a domain (whose constraints a write would check) and,
// when `typmod`, the column's type modifier, if it has one, is the value's.
bool holds(Form_pg_attribute column, Form_pg_attribute value, bool typmod);

// open_target: `speculative` prepares its unique indexes for insert_new.
// attno: the attribute number of column `name` (0: none), or of the column
// named by `prefix` and i ("a3", "dc3"); type_of: an attribute's type.
int attno(TupleDesc desc, const char* name);
int attno(TupleDesc desc, const char* prefix, int i);
inline Oid type_of(TupleDesc desc, int att) { return TupleDescAttr(desc, att - 1)->atttypid; }

void open_target(Target& t, Oid relid, bool speculative = false);
// begin_writes: everything before is visible (the statement that said what
// to write, and earlier ones); the writes get a command id of their own, and
// rows are found in the latest snapshot.
void begin_writes(Target& t);
void close_target(Target& t);

// equality_procs: per key column of `index`, its operator class's equality.
RegProcedure* equality_procs(Relation index, int nkeys);
// key_index: the table's valid btree index whose key is exactly the columns
// `attnums` (in that order), without expressions or predicate; nullptr if none.
Relation key_index(const Target& t, const AttrNumber* attnums, int nkeys);
// set_key: scan key k of a probe of `index` for `value`: equality by the
// index's own operator (eq, from equality_procs), or IS NULL.
void set_key(ScanKeyData* keys, int k, Relation index, const RegProcedure* eq, Datum value, bool isnull);
// probe: the first row of the index's scan for `keys`, into `found`.
bool probe(const Target& t, Relation index, ScanKeyData* keys, int nkeys, TupleTableSlot* found);
// lock_latest: locks the latest version of the row in `found` (waiting for a
// writer holding it), as ON CONFLICT DO UPDATE or SELECT FOR UPDATE do under
// READ COMMITTED, and leaves that version in `found`; false when it is gone.
bool lock_latest(const Target& t, TupleTableSlot* found);
// insert_new: inserts the row in `fresh`, whose key `index` (unique, of a
// target opened `speculative`) did not find, as INSERT ... ON CONFLICT does:
// speculatively, so that of two writers inserting the same key one waits for
// the other, then finds its row.  Inserted: the row's TID is in
// fresh->tts_tid.  Found: a row with the key is there after all, and is in
// `found`, locked as lock_latest locks it.
enum class NewRow { Inserted, Found };
NewRow insert_new(const Target& t, Relation index, TupleTableSlot* fresh, TupleTableSlot* found);

}  // namespace ivm::apply::rows

// spi.hpp: running SQL from C++ through SPI, with plans cached by their text,
// ephemeral named relations (how deltas travel between steps), and the
// pinned search_path every generated statement runs under.
#pragma once
#include "pg/guard.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace ivm::pg {

// Tuples: `n` rows `rows` of row type `desc` (a statement's result, or rows
// built below SQL).
struct Tuples {
  TupleDesc desc = nullptr;
  HeapTuple* rows = nullptr;
  uint64 n = 0;
};

// Spi: an SPI connection for the lifetime of the object.
class Spi {
 public:
  Spi();
  ~Spi();
  Spi(const Spi&) = delete;
  Spi& operator=(const Spi&) = delete;

  // exec: runs one statement through a plan cached by its text and the row
  // types of the relations registered here that it names, and returns the
  // number of rows processed.  Generated maintenance SQL only.
  uint64 exec(const std::string& sql);
  // exec_once: runs a statement without caching its plan (DDL, one-offs).
  uint64 exec_once(const std::string& sql);
  // exec_into: runs a query without caching its plan, sending its rows to
  // `dest` instead of keeping them.  `accept` sees the rows' type first; when
  // it refuses (or a SnapshotScope is active, whose snapshot this cannot
  // take), nothing runs and the result is false.
  bool exec_into(const std::string& sql, DestReceiver* dest, bool (*accept)(TupleDesc, void*), void* arg);

  // Results of the last statement.
  uint64 rows() const;
  std::string text(uint64 row, int col) const;  // "" for NULL
  bool is_null(uint64 row, int col) const;
  bool boolean(uint64 row, int col) const;
  std::int64_t int8(uint64 row, int col) const;  // an int8 column; 0 for NULL
  int column(const char* name) const;
  // result: the last statement's rows (they live as long as the connection).
  Tuples result() const;

  // capture: registers the last result as an ephemeral relation `name`,
  // readable by later statements on this connection; replaces any earlier
  // relation of that name.
  void capture(const std::string& name);
  // keep_rows: the same for rows held elsewhere (copied).
  void keep_rows(const std::string& name, const Tuples& t);
  // append_result: appends the last result's rows to `store` (created in
  // `cxt` on first use, with its row type saved in `desc`).
  void append_result(MemoryContext cxt, Tuplestorestate*& store, TupleDesc& desc);
  // register_store: makes a tuplestore readable as relation `name`.
  void register_store(const std::string& name, Tuplestorestate* store, TupleDesc desc);
  // keep_store: makes `store` (allocated in context()) readable as relation
  // `name`, and ends it with the connection.
  void keep_store(const std::string& name, Tuplestorestate* store, TupleDesc desc);
  // context: memory that lives as long as the connection.
  MemoryContext context() const { return cxt_; }
  // register_trigger_data: makes a trigger's transition tables readable.
  void register_trigger_data(TriggerData* td);
  // find_store: the tuplestore registered under `name` on this connection
  // (any of the above), with its row type; false if there is none.
  bool find_store(const std::string& name, Tuplestorestate*& store, TupleDesc& desc) const;
  // fresh_plans: plan every statement anew (large batches: a plan cached for
  // a one-row change would probe where it should hash).
  void fresh_plans(bool on) { fresh_plans_ = on; }
  // snapshot: the one a SnapshotScope pins (nullptr outside of one).
  Snapshot snapshot() const { return snapshot_; }

 private:
  friend class SnapshotScope;
  friend class SnapshotPause;
  MemoryContext cxt_;
  std::vector<Tuplestorestate*> stores_;  // captured results, ended with the connection
  struct Named {
    Tuplestorestate* store;
    TupleDesc desc;
    std::string shape;  // its columns' names and types (see exec)
  };
  std::map<std::string, Named> named_;  // every registered store
  Snapshot snapshot_ = nullptr;         // when set, every statement runs in it
  bool fresh_plans_ = false;
};

// SnapshotScope: while alive, the connection's statements all read one
// registered snapshot (advancing only its command id, to see their own writes).
class SnapshotScope {
 public:
  explicit SnapshotScope(Spi& spi);
  ~SnapshotScope();
  SnapshotScope(const SnapshotScope&) = delete;
  SnapshotScope& operator=(const SnapshotScope&) = delete;

 private:
  Spi& spi_;
};

// SnapshotPause: while alive, the connection's statements take fresh
// snapshots again, as outside of a SnapshotScope.
class SnapshotPause {
 public:
  explicit SnapshotPause(Spi& spi);
  ~SnapshotPause();
  SnapshotPause(const SnapshotPause&) = delete;
  SnapshotPause& operator=(const SnapshotPause&) = delete;

 private:
  Spi& spi_;
  Snapshot saved_;
};

// ScopedSetting: sets a configuration parameter while alive (a GUC nest
// level, so it is undone with the scope, or by the transaction's abort).
class ScopedSetting {
 public:
  ScopedSetting(const char* name, const char* value);
  ~ScopedSetting();
  ScopedSetting(const ScopedSetting&) = delete;
  ScopedSetting& operator=(const ScopedSetting&) = delete;

 private:
  int level_;
};

// PinnedSearchPath: while alive, search_path is pg_catalog, pg_temp, so
// generated SQL and deparsed expressions never resolve through a user's
// schemas (no hijacking by a fake operator or function).
class PinnedSearchPath : public ScopedSetting {
 public:
  PinnedSearchPath() : ScopedSetting("search_path", "pg_catalog, pg_temp") {}
};

std::string quote_ident(const std::string& s);
// relation_oid: the relation a qualified name ("ivm_state.s_16496", quoted
// parts allowed) names, 0 when there is none.
std::uint32_t relation_oid(const std::string& name);
std::string quote_literal(const std::string& s);

}  // namespace ivm::pg

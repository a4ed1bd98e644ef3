// maintain.hpp: running delta steps through the view DAG.
#pragma once
#include "plan/sqlgen.hpp"
#include "pg/role.hpp"
#include "pg/spi.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <vector>
#include <string>

namespace ivm::apply {

// The appliers' transaction-level advisory lock: one apply at a time.
constexpr long long kApplyLockKey = 0x69766d6170706c79;  // "ivmapply"

// MaintenanceScope: while alive, ivm's own writes to the table of `view`
// pass the guard trigger that refuses users' direct changes.  Only the view
// being maintained right now (the innermost scope) is open: code that runs
// during its maintenance (the owner's triggers, say) cannot write to another
// view's table.
class MaintenanceScope {
 public:
  explicit MaintenanceScope(std::uint32_t view);
  ~MaintenanceScope();
  MaintenanceScope(const MaintenanceScope&) = delete;
  MaintenanceScope& operator=(const MaintenanceScope&) = delete;
  static bool allows(std::uint32_t relation);
  static void reset();  // at transaction abort
};

// AsViewOwner: while alive, SQL runs with the rights of the view's owner (see
// pg::AsRole) and may write to the view's table.  Refuses (0A000) when
// row-level security of a relation the view reads, or of the view's table,
// applies to the owner: maintenance would see a filtered table next to an
// unfiltered change, and the view would drift.
class AsViewOwner {
 public:
  explicit AsViewOwner(const plan::ViewPlan& p);

 private:
  pg::AsRole role_;
  MaintenanceScope scope_;
};

// LargeBatch: while alive, a change of more than kLargeBatch rows is
// maintained with settings for its size.  Plans cached for one-row changes
// would be reused for it, so each statement is planned afresh for the sizes
// at hand; consolidating and pairing the batch sorts and hashes it, in
// memory; and no JIT: compiling each generated statement costs more than
// running it (a 100,000-row INSERT spent 1.6 s of 8 s compiling).  Nested
// loops stay enabled: the key sets are joined to the large tables by index
// probes (a hash join would read a whole table per statement), while sets are
// joined to each other only on hashable equalities.
class LargeBatch {
 public:
  static constexpr std::uint64_t kLargeBatch = 1000;
  LargeBatch(pg::Spi& spi, std::uint64_t rows);
  ~LargeBatch();
  LargeBatch(const LargeBatch&) = delete;
  LargeBatch& operator=(const LargeBatch&) = delete;

 private:
  pg::Spi& spi_;
  std::optional<pg::ScopedSetting> no_jit_, memory_;
};

// Path: how ivm did each part of a view's maintenance (and of its filling by
// create_view and refresh).  Counted per backend (path_count, took;
// ivm.maintenance_paths() shows them): the paths below SQL step aside to the
// statements in the cases their headers list, and a user (or a test) can see
// which ran.
enum class Path {
  KeysLockedDirectly,        // key locks taken row by row (keyed.hpp lock_keys)
  KeysLockedByStatement,     // ... by the ON CONFLICT statement
  StateMergedByGroup,        // aggregate state merged row by row (merge.hpp)
  StateUpsertedByStatement,  // ... by the upsert statement
  ViewWrittenByKey,          // the view's rows written row by row (keyed.hpp)
  ViewWrittenByStatement,    // ... by the SQL apply statement
  ViewFilledBelowSql,        // a view (and its state) filled in batches (load.hpp)
  ViewFilledByStatement,     // ... by INSERT statements
  DeltasSummedBelowSql,      // an aggregate's per-group deltas summed row by row (fold.hpp)
  DeltasSummedByStatement,   // ... by the deltas statement
  RowsComputedBelowSql,      // the rows computed from a change with compiled expressions (computed.hpp)
  RowsComputedByStatement,   // ... by a statement
};
constexpr std::size_t kPaths = 12;
std::uint64_t path_count(Path p);
void took(Path p);

// Changed: base relations changed by a statement, with where to read each change.
using Changed = std::map<std::uint32_t, plan::DeltaSource>;

// propagate: applies the changes of base relations to every immediate view
// that depends on them, directly or through other views, in dependency
// order; each view's own change is handed to the views that read it as an
// ephemeral relation.  When several base relations changed together, each
// view sees them all at once (the join rules' telescoping sum), which is
// what keeps a view exact when one statement changed two of its tables.
//
// Phase::Write runs in the writer's transaction: immediate views are
// maintained, and the changes of relations that deferred views read are
// appended to their delta tables.  Phase::Apply runs in ivm.apply_deltas():
// the consumed deltas feed the deferred views (the immediate ones saw them
// already), and everything downstream of a deferred view follows it.
// Returns the number of view rows changed.
enum class Phase { Write, Apply };
std::uint64_t propagate(pg::Spi& spi, const Changed& changes, Phase phase);

// record_truncate: before a TRUNCATE, the rows about to vanish become
// deletions in the relation's delta table (if deferred views read it).
void record_truncate(pg::Spi& spi, std::uint32_t relation);

// apply_deltas: applies the pending changes of every deferred view (view 0),
// or of the relations one view reads, in one snapshot.  Returns the number of
// view rows changed.
std::uint64_t apply_deltas(pg::Spi& spi, std::uint32_t view);
// apply_relations: the same for the pending changes of the given relations.
std::uint64_t apply_relations(pg::Spi& spi, const std::vector<std::uint32_t>& relations);

// refresh: rebuilds one view (and its state) from scratch, then every view
// that reads it.  Returns the view's row count.
std::uint64_t refresh(pg::Spi& spi, std::uint32_t view);
// refresh_dependents: rebuilds every view reading `relation` (TRUNCATE).
void refresh_dependents(pg::Spi& spi, std::uint32_t relation);
// verify: rows that differ between the view and its query (0 = exact).
std::uint64_t verify(pg::Spi& spi, std::uint32_t view);

}  // namespace ivm::apply

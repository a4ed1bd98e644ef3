// maintain.hpp: running delta steps through the view DAG.
#pragma once
#include "plan/sqlgen.hpp"
#include "pg/spi.hpp"

#include <cstdint>
#include <string>

namespace ivm::apply {

// MaintenanceScope: while alive, ivm's own writes to view tables pass the
// guard trigger that refuses users' direct changes.
class MaintenanceScope {
 public:
  MaintenanceScope();
  ~MaintenanceScope();
  MaintenanceScope(const MaintenanceScope&) = delete;
  MaintenanceScope& operator=(const MaintenanceScope&) = delete;
  static bool active();
  static void reset();  // at transaction abort
};

// propagate: applies the change of base relation `base` (readable through
// `source`) to every immediate view that depends on it, directly or through
// other views, in dependency order; each view's own change is handed to the
// views that read it as an ephemeral relation.
void propagate(pg::Spi& spi, std::uint32_t base, const plan::DeltaSource& source);

// refresh: rebuilds one view (and its state) from scratch, then every view
// that reads it.  Returns the view's row count.
std::uint64_t refresh(pg::Spi& spi, std::uint32_t view);
// refresh_dependents: rebuilds every view reading `relation` (TRUNCATE).
void refresh_dependents(pg::Spi& spi, std::uint32_t relation);
// verify: rows that differ between the view and its query (0 = exact).
std::uint64_t verify(pg::Spi& spi, std::uint32_t view);

}  // namespace ivm::apply

// owner.cpp: maintenance runs as the view's owner, and only the view being
// maintained accepts writes.
#include "apply/maintain.hpp"  // plan headers first: they refuse to follow postgres.h

extern "C" {
#include "utils/rls.h"
}

#include <vector>

namespace ivm::apply {

namespace {

// The views being maintained, innermost last (a view owner's trigger may
// write to a base table of another view, whose maintenance then nests).
std::vector<std::uint32_t>& maintained() {
  static std::vector<std::uint32_t> views;
  return views;
}

std::string relation_name(Oid relid) {
  return pg::pg_call([&] {
    return std::string(quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid)));
  });
}

// owner_checked: the owner of p's table, once it is known that no row-level
// security of the relations its maintenance reads and writes applies to it.
Oid owner_checked(const plan::ViewPlan& p) {
  Oid owner = pg::relation_owner(p.oid);
  std::vector<std::uint32_t> relations{p.oid};
  for (const auto& l : p.leaves) relations.push_back(l.relid);
  for (std::uint32_t r : relations) {
    bool applies = pg::pg_call([&] { return check_enable_rls(r, owner, true) == RLS_ENABLED; });
    if (applies)
      throw pg::Error(
          ERRCODE_FEATURE_NOT_SUPPORTED,
          "row-level security of table " + relation_name(r) + " prevents maintaining incremental view " + p.name,
          "Its policies apply to role " + pg::role_name(owner) +
              ", the view's owner: the view would no longer match its query.",
          "Disable row-level security on the table, or let the view's owner bypass it (as the "
          "table's owner, without FORCE ROW LEVEL SECURITY, or with BYPASSRLS), or drop the view.");
  }
  return owner;
}

}  // namespace

MaintenanceScope::MaintenanceScope(std::uint32_t view) { maintained().push_back(view); }
MaintenanceScope::~MaintenanceScope() {
  if (!maintained().empty()) maintained().pop_back();
}
bool MaintenanceScope::allows(std::uint32_t relation) {
  return !maintained().empty() && maintained().back() == relation;
}
void MaintenanceScope::reset() { maintained().clear(); }

AsViewOwner::AsViewOwner(const plan::ViewPlan& p) : role_(owner_checked(p)), scope_(p.oid) {}

}  // namespace ivm::apply

// role.hpp: running SQL with another role's rights.
//
// ivm runs three kinds of SQL, each as the role it belongs to: a view's own
// maintenance as the view's owner (a writer of a base table needs no
// privilege on the view), ivm's bookkeeping (its catalog, the delta tables,
// the internal objects in ivm_state) as the owner of ivm's catalog, and
// everything else as the calling user.
#pragma once
#include "pg/guard.hpp"

namespace ivm::pg {

// AsRole: while alive, the current user is `role`, inside a
// security-restricted operation, as PostgreSQL runs REFRESH MATERIALIZED VIEW
// or an index expression with the table owner's rights: code running
// meanwhile (the owner's functions and triggers) cannot SET ROLE or create
// temporary objects, and the settings it changes are undone when the scope
// ends.  search_path is pg_catalog, pg_temp meanwhile.  The previous user is
// restored on every path: by the destructor when a C++ exception unwinds, by
// the (sub)transaction abort after an ereport.
class AsRole {
 public:
  explicit AsRole(Oid role);
  ~AsRole();
  AsRole(const AsRole&) = delete;
  AsRole& operator=(const AsRole&) = delete;

 private:
  Oid saved_user_;
  int saved_context_;
  int guc_level_;
};

// relation_owner: the owner of a relation (pg_class.relowner).
Oid relation_owner(Oid relid);
// role_name: a role's name, quoted for SQL.
std::string role_name(Oid role);

}  // namespace ivm::pg

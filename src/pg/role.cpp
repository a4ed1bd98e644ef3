// role.cpp: switching the current user for a scope.
#include "pg/role.hpp"

#include <exception>

namespace ivm::pg {

AsRole::AsRole(Oid role) {
  pg_call([&] {
    GetUserIdAndSecContext(&saved_user_, &saved_context_);
    guc_level_ = NewGUCNestLevel();
    SetUserIdAndSecContext(role, saved_context_ | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
    // Whatever the caller's search_path, SQL run with another role's rights
    // never resolves a name through a schema the caller chose.  (Usually
    // pinned already: then setting it again would only cost a recomputation.)
    static const char* const kPinned = "pg_catalog, pg_temp";
    if (!namespace_search_path || strcmp(namespace_search_path, kPinned) != 0)
      (void)set_config_option("search_path", kPinned, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
  });
}

AsRole::~AsRole() {
  // On the error path the (sub)transaction abort pops the setting level.
  if (std::uncaught_exceptions() == 0) pg_call([l = guc_level_] { AtEOXact_GUC(false, l); });
  SetUserIdAndSecContext(saved_user_, saved_context_);
}

Oid relation_owner(Oid relid) {
  return pg_call([&] {
    HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
    if (!HeapTupleIsValid(tuple)) elog(ERROR, "cache lookup failed for relation %u", relid);
    Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relowner;
    ReleaseSysCache(tuple);
    return owner;
  });
}

std::string role_name(Oid role) {
  return pg_call([&] { return std::string(quote_identifier(GetUserNameFromId(role, false))); });
}

}  // namespace ivm::pg

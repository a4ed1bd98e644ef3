// ddl.cpp: keeping incremental views right while users change the tables
// around them.
//
// PostgreSQL's own dependency machinery does most of the work: every view
// table depends (pg_depend) on the relations and the columns it reads, so
// dropping one is refused, or drops the view with CASCADE (DROP TABLE, DROP
// SCHEMA, DROP OWNED, ALTER TABLE DROP COLUMN alike).  Three event triggers
// add what it cannot know:
//   - ddl_command_start (ivm_on_ddl_start) refuses, before anything changed
//     and with a hint naming the views, what would break a view: dropping a
//     table or column it reads without CASCADE, retyping or renaming a column
//     it reads, changing the columns of a view table, inheritance or
//     partitioning involving a table a view reads, making either unlogged,
//     and dropping, renaming or disabling ivm's own triggers; DROP EXTENSION
//     ivm while views exist.
//   - ddl_command_end (ivm_on_ddl_end): a renamed or moved relation (or
//     schema) gets its new name into the stored plans of the views; a created
//     index or altered table may prove a view's unique key again.
//   - sql_drop (ivm_on_sql_drop): a dropped view table (directly or by
//     CASCADE) leaves ivm's catalog with its state, and the capture triggers
//     of its base tables go once no view needs them — as ivm.drop_view().
#include "plan/ir.hpp"  // plan headers first: they refuse to follow postgres.h
#include "catalog/catalog.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "commands/event_trigger.h"
#include "nodes/parsenodes.h"
}

#include <algorithm>
#include <set>

using namespace ivm;

namespace {

using pg::Error;
using pg::pg_call;

std::string oid_text(std::uint32_t oid) { return std::to_string(oid); }

std::string oid_array(const std::vector<std::uint32_t>& oids) {
  std::string list;
  for (std::uint32_t r : oids) list += (list.empty() ? "" : ",") + oid_text(r);
  return "'{" + list + "}'::pg_catalog.oid[]";
}

std::vector<std::uint32_t> oids(pg::Spi& spi) {
  std::vector<std::uint32_t> out;
  for (uint64 i = 0; i < spi.rows(); ++i) out.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
  return out;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::uint32_t resolve(RangeVar* rv, bool missing_ok = true) {
  if (!rv) return InvalidOid;
  return pg_call([&] { return RangeVarGetRelid(rv, NoLock, missing_ok); });
}

std::string relation_label(std::uint32_t relid) {
  return pg_call([&] {
    char* nsp = get_namespace_name(get_rel_namespace(relid));
    char* rel = get_rel_name(relid);
    return std::string(nsp && rel ? quote_qualified_identifier(nsp, rel) : "?");
  });
}

// Role: what a relation is to ivm.
struct Role {
  bool view = false;  // an incremental view's table
  bool read = false;  // read by an incremental view
};

Role role_of(pg::Spi& spi, std::uint32_t relid) {
  if (!OidIsValid(relid)) return {};
  spi.exec_once("SELECT EXISTS (SELECT 1 FROM ivm.views WHERE viewid = " + oid_text(relid) +
                "), EXISTS (SELECT 1 FROM ivm.dependencies WHERE relid = " + oid_text(relid) + ")");
  return {spi.boolean(0, 1), spi.boolean(0, 2)};
}

// Readers: the incremental views a change of some relation would break, as
// users know them (an internal view of a subquery stands for the view that
// owns it), in the order they can be dropped in; `direct` is one that reads
// the relation itself, for the message.
struct Readers {
  std::vector<std::string> names;
  std::string direct;
  bool empty() const { return names.empty(); }
};

// readers: the views reading `relids` (column attnum of the one relation,
// when attnum > 0), and the views reading those, minus the views in `spared`.
Readers readers(pg::Spi& spi, const std::vector<std::uint32_t>& relids, int attnum = 0,
                const std::vector<std::uint32_t>& spared = {}) {
  std::string direct =
      attnum > 0
          ? "SELECT d.objid FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
            "AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = ANY (" +
                oid_array(relids) + ") AND d.refobjsubid = " + std::to_string(attnum)
          : "SELECT viewid FROM ivm.dependencies WHERE relid = ANY (" + oid_array(relids) + ")";
  // Walking up from the direct readers: through the views reading them, and
  // from an internal view to its owner (which reads it).
  spi.exec_once("WITH RECURSIVE down(viewid, direct) AS (SELECT viewid, true FROM ivm.views WHERE viewid IN (" +
                direct +
                ") UNION SELECT d.viewid, false FROM ivm.dependencies d JOIN down ON d.relid = down.viewid), "
                "top(viewid, direct) AS (SELECT viewid, direct FROM down UNION "
                "SELECT v.parent, t.direct FROM ivm.views v JOIN top t USING (viewid) WHERE v.parent IS NOT NULL) "
                "SELECT v.name, pg_catalog.bool_or(t.direct) FROM ivm.views v JOIN top t USING (viewid) "
                "WHERE NOT v.internal AND NOT v.viewid = ANY (" +
                oid_array(spared) +
                ") "
                "GROUP BY v.name, v.level ORDER BY v.level DESC, v.name");
  Readers out;
  for (uint64 i = 0; i < spi.rows(); ++i) {
    out.names.push_back(spi.text(i, 1));
    if (spi.boolean(i, 2) && (out.direct.empty() || spi.text(i, 1) < out.direct)) out.direct = spi.text(i, 1);
  }
  if (out.direct.empty() && !out.names.empty()) out.direct = out.names.back();
  return out;
}

std::string drop_them(const Readers& views) {
  std::string calls;
  for (const auto& v : views.names) calls += (calls.empty() ? "" : ", ") + std::string("ivm.drop_view('") + v + "')";
  return calls;
}

[[noreturn]] void refuse_column_change(const std::string& what, const std::string& column, std::uint32_t relid,
                                       const Readers& views) {
  throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
              "cannot " + what + " column \"" + column + "\" of table " + relation_label(relid) +
                  " because incremental view " + views.direct + " reads it",
              "Incremental views reading it, directly or through other views: " + joined(views.names) + ".",
              "Drop the views (" + drop_them(views) + "), change the column, then create them again.");
}

[[noreturn]] void refuse_view_columns(std::uint32_t relid) {
  throw Error(ERRCODE_FEATURE_NOT_SUPPORTED, "cannot change the columns of incremental view " + relation_label(relid),
              "The columns of an incremental view are those of its query.",
              "Drop the view with ivm.drop_view() and create it again with another query.");
}

int attnum_of(std::uint32_t relid, const char* column) {
  if (!column) return 0;
  return pg_call([&] { return static_cast<int>(get_attnum(relid, column)); });
}

// column_readers: the views reading column `column` of relid.
Readers column_readers(pg::Spi& spi, std::uint32_t relid, const char* column) {
  int att = attnum_of(relid, column);
  return att > 0 ? readers(spi, {relid}, att) : Readers{};
}

// ivm_trigger: whether trigger `name` on relid is one of ivm's (capture or guard).
bool ivm_trigger(pg::Spi& spi, std::uint32_t relid, const std::string& name) {
  spi.exec_once(
      "SELECT 1 FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid "
      "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE t.tgrelid = " +
      oid_text(relid) + " AND t.tgname = " + pg::quote_literal(name) +
      " AND n.nspname = 'ivm' AND p.proname IN ('capture', 'capture_row', 'guard')"
      // A trigger of someone else's calling ivm.capture() is not
      // ivm's (ivm.capture() refuses to run for it): it may go.
      " AND t.tgname IN ('ivm_guard', 'ivm_capture_ins', 'ivm_capture_upd', 'ivm_capture_del', "
      "'ivm_capture_trunc', 'ivm_capture_btrunc', 'ivm_capture_row')");
  return spi.rows() > 0;
}

// refuse_trigger_change: ivm's triggers on a base table capture its changes;
// the one on a view table refuses users' changes to it.
[[noreturn]] void refuse_trigger_change(pg::Spi& spi, const std::string& what, const std::string& trigger,
                                        std::uint32_t relid, Role role) {
  std::string table = relation_label(relid);
  std::string detail = role.view
                           ? "It keeps users from changing incremental view " + table + "."
                           : "Incremental views reading " + table + ": " + joined(readers(spi, {relid}).names) + ".";
  throw Error(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
              "cannot " + what + " trigger " + trigger + " on " + table + " because incremental views need it", detail,
              "ivm drops its triggers itself once no view needs them: drop the views with ivm.drop_view().");
}

// Inheritance: statement triggers see one table of an inheritance tree, so a
// table a view reads (or a view table) may neither gain a parent nor a child.
void check_inheritance(pg::Spi& spi, std::uint32_t child, std::uint32_t parent) {
  for (std::uint32_t r : {child, parent}) {
    Role role = role_of(spi, r);
    if (!role.view && !role.read) continue;
    Readers views = role.read ? readers(spi, {r}) : Readers{};
    throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                "cannot make " + relation_label(r) + " " +
                    (r == child ? "an inheritance child or partition" : "an inheritance parent") + " because " +
                    (role.view ? "it is an incremental view" : "incremental view " + views.direct + " reads it"),
                "Statement triggers on an inheritance tree do not tell its tables' changes apart.",
                role.view ? "" : "Drop the views reading it first (" + drop_them(views) + ").");
  }
}

void on_drop(pg::Spi& spi, DropStmt* stmt) {
  if (stmt->removeType == OBJECT_EXTENSION) {
    if (stmt->behavior == DROP_CASCADE) return;  // the view tables depend on the extension
    ListCell* lc;
    bool ivm = false;
    foreach (lc, stmt->objects) ivm = ivm || std::string(strVal(lfirst(lc))) == "ivm";
    if (!ivm) return;
    spi.exec_once("SELECT name FROM ivm.views WHERE NOT internal ORDER BY level DESC, name");
    std::vector<std::string> views;
    for (uint64 i = 0; i < spi.rows(); ++i) views.push_back(spi.text(i, 1));
    if (views.empty()) return;
    throw Error(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST, "cannot drop extension ivm because incremental views exist",
                "Incremental views: " + joined(views) + ".",
                "Drop them with ivm.drop_view() first, or use DROP EXTENSION ivm CASCADE to drop them too.");
  }
  if (stmt->removeType == OBJECT_TRIGGER) {
    ListCell* lc;
    foreach (lc, stmt->objects) {
      List* names = static_cast<List*>(lfirst(lc));
      std::string trigger = strVal(llast(names));
      std::uint32_t relid = pg_call([&] {
        return RangeVarGetRelid(makeRangeVarFromNameList(list_truncate(list_copy(names), list_length(names) - 1)),
                                NoLock, true);
      });
      Role role = role_of(spi, relid);
      if ((role.read || role.view) && ivm_trigger(spi, relid, trigger))
        refuse_trigger_change(spi, "drop", trigger, relid, role);
    }
    return;
  }
  if (stmt->removeType != OBJECT_TABLE || stmt->behavior == DROP_CASCADE) return;
  // DROP TABLE without CASCADE: PostgreSQL would refuse too (pg_depend), but
  // only ivm can say which incremental views and how to drop them.
  std::vector<std::uint32_t> dropped;
  ListCell* lc;
  foreach (lc, stmt->objects) {
    List* names = static_cast<List*>(lfirst(lc));
    std::uint32_t relid = pg_call([&] { return RangeVarGetRelid(makeRangeVarFromNameList(names), NoLock, true); });
    if (OidIsValid(relid)) dropped.push_back(relid);
  }
  if (dropped.empty()) return;
  spi.exec_once("SELECT DISTINCT relid::oid FROM ivm.dependencies WHERE relid = ANY (" + oid_array(dropped) +
                ") ORDER BY 1");
  for (std::uint32_t relid : oids(spi)) {
    Readers views = readers(spi, {relid}, 0, dropped);
    if (views.empty()) continue;
    throw Error(
        ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
        "cannot drop table " + relation_label(relid) + " because incremental view " + views.direct + " reads it",
        "Incremental views reading it, directly or through other views: " + joined(views.names) + ".",
        "Drop the views first (" + drop_them(views) + "), or use DROP TABLE ... CASCADE to drop them too.");
  }
}

void on_alter_table(pg::Spi& spi, AlterTableStmt* stmt) {
  std::uint32_t relid = resolve(stmt->relation);
  Role role = role_of(spi, relid);
  ListCell* lc;
  foreach (lc, stmt->cmds) {
    AlterTableCmd* cmd = lfirst_node(AlterTableCmd, lc);
    switch (cmd->subtype) {
      case AT_AddColumn:
      case AT_AddIdentity:
        if (role.view) refuse_view_columns(relid);
        break;
      case AT_DropColumn:
        if (role.view) refuse_view_columns(relid);
        // With CASCADE, PostgreSQL drops the views reading the column
        // (pg_depend) and the sql_drop trigger cleans up after them.
        if (role.read && cmd->behavior != DROP_CASCADE) {
          auto views = column_readers(spi, relid, cmd->name);
          if (!views.empty())
            throw Error(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                        "cannot drop column \"" + std::string(cmd->name) + "\" of table " + relation_label(relid) +
                            " because incremental view " + views.direct + " reads it",
                        "Incremental views reading it, directly or through other views: " + joined(views.names) + ".",
                        "Drop the views first (" + drop_them(views) +
                            "), or use ALTER TABLE ... DROP COLUMN ... CASCADE to drop them too.");
        }
        break;
      case AT_AlterColumnType:
        if (role.view) refuse_view_columns(relid);
        if (role.read) {
          auto views = column_readers(spi, relid, cmd->name);
          if (!views.empty()) refuse_column_change("change the type of", cmd->name, relid, views);
        }
        break;
      case AT_SetUnLogged:
        // Crash recovery empties an unlogged table without firing a trigger:
        // a base table's views (or a view's state) would silently go wrong.
        if (role.view || role.read)
          throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                      "cannot make " + relation_label(relid) + " unlogged because " +
                          (role.view ? "it is an incremental view"
                                     : "incremental view " + readers(spi, {relid}).direct + " reads it"),
                      "After a crash PostgreSQL empties an unlogged table without telling ivm.");
        break;
      case AT_AddInherit: check_inheritance(spi, relid, resolve(reinterpret_cast<RangeVar*>(cmd->def))); break;
      case AT_AttachPartition:
        check_inheritance(spi, resolve(reinterpret_cast<PartitionCmd*>(cmd->def)->name), relid);
        break;
      case AT_DisableTrig:
        if ((role.read || role.view) && cmd->name && ivm_trigger(spi, relid, cmd->name))
          refuse_trigger_change(spi, "disable", cmd->name, relid, role);
        break;
      case AT_DisableTrigAll:
      case AT_DisableTrigUser:
        if (role.read) {
          Readers views = readers(spi, {relid});
          std::string list = joined(views.names), table = relation_label(relid);
          pg_call([&] {
            ereport(WARNING, (errmsg("incremental views reading %s are not maintained while its triggers are disabled",
                                     table.c_str()),
                              errdetail("Incremental views reading it: %s.", list.c_str()),
                              errhint("Rebuild them with ivm.refresh() once the triggers are enabled again.")));
          });
        }
        break;
      default: break;
    }
  }
}

void on_rename(pg::Spi& spi, RenameStmt* stmt) {
  if (stmt->renameType == OBJECT_COLUMN) {
    std::uint32_t relid = resolve(stmt->relation);
    Role role = role_of(spi, relid);
    if (role.view) refuse_view_columns(relid);
    if (!role.read) return;
    auto views = column_readers(spi, relid, stmt->subname);
    if (!views.empty()) refuse_column_change("rename", stmt->subname, relid, views);
  } else if (stmt->renameType == OBJECT_TRIGGER) {
    std::uint32_t relid = resolve(stmt->relation);
    Role role = role_of(spi, relid);
    if ((role.read || role.view) && ivm_trigger(spi, relid, stmt->subname))
      refuse_trigger_change(spi, "rename", stmt->subname, relid, role);
  }
}

void on_create_table(pg::Spi& spi, CreateStmt* stmt) {
  ListCell* lc;
  foreach (lc, stmt->inhRelations) check_inheritance(spi, InvalidOid, resolve(lfirst_node(RangeVar, lc)));
}

EventTriggerData* event_data(FunctionCallInfo fcinfo, const char* function) {
  if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
    throw Error(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                std::string(function) + " must be called as an event trigger");
  return reinterpret_cast<EventTriggerData*>(fcinfo->context);
}

// may_add_key: whether an ALTER TABLE may leave a column unique that was
// not: it adds a constraint or an index.
bool may_add_key(const AlterTableStmt* stmt) {
  ListCell* lc;
  foreach (lc, stmt->cmds) {
    switch (static_cast<const AlterTableCmd*>(lfirst(lc))->subtype) {
      case AT_AddConstraint:
      case AT_AddIndex:
      case AT_AddIndexConstraint: return true;
      default: break;
    }
  }
  return false;
}

}  // namespace

IVM_FUNCTION(ivm_on_ddl_start) {
  Node* tree = event_data(fcinfo, "ivm.on_ddl_start()")->parsetree;
  if (catalog::OwnDdl::active()) return PointerGetDatum(nullptr);
  // Most DDL is none of ivm's business: decide that before connecting to SPI.
  if (IsA(tree, CreateStmt) && reinterpret_cast<CreateStmt*>(tree)->inhRelations == NIL)
    return PointerGetDatum(nullptr);
  if (!IsA(tree, CreateStmt) && !IsA(tree, DropStmt) && !IsA(tree, AlterTableStmt) && !IsA(tree, RenameStmt))
    return PointerGetDatum(nullptr);
  pg::Spi spi;
  switch (nodeTag(tree)) {
    case T_DropStmt: on_drop(spi, reinterpret_cast<DropStmt*>(tree)); break;
    case T_AlterTableStmt: on_alter_table(spi, reinterpret_cast<AlterTableStmt*>(tree)); break;
    case T_RenameStmt: on_rename(spi, reinterpret_cast<RenameStmt*>(tree)); break;
    case T_CreateStmt: on_create_table(spi, reinterpret_cast<CreateStmt*>(tree)); break;
    default: break;
  }
  return PointerGetDatum(nullptr);
}

IVM_FUNCTION(ivm_on_ddl_end) {
  Node* tree = event_data(fcinfo, "ivm.on_ddl_end()")->parsetree;
  if (IsA(tree, CreateTrigStmt)) {
    // A restore creates each view table's guard trigger after loading ivm's
    // catalog and the tables' data.
    CreateTrigStmt* t = reinterpret_cast<CreateTrigStmt*>(tree);
    if (std::string(t->trigname) != "ivm_guard") return PointerGetDatum(nullptr);
    Oid relid = pg_call([&] { return RangeVarGetRelid(t->relation, NoLock, true); });
    if (!OidIsValid(relid)) return PointerGetDatum(nullptr);
    pg::Spi spi;
    catalog::repair_restored(spi, relid);
    return PointerGetDatum(nullptr);
  }
  if (IsA(tree, IndexStmt) || IsA(tree, AlterTableStmt)) {
    // A unique index or key created may prove the key a view lost, or never
    // had.  Not for ivm's own DDL, nor for an ALTER TABLE that adds no
    // constraint or index (create_view's owner and replica identity changes).
    bool may_prove = IsA(tree, IndexStmt) || may_add_key(reinterpret_cast<AlterTableStmt*>(tree));
    if (may_prove && !catalog::OwnDdl::active()) {
      pg::Spi spi;
      catalog::recheck_unique_keys(spi);
    }
    if (IsA(tree, IndexStmt)) return PointerGetDatum(nullptr);
  }
  bool relation_moved =
      (IsA(tree, RenameStmt) && reinterpret_cast<RenameStmt*>(tree)->renameType == OBJECT_TABLE) ||
      (IsA(tree, AlterObjectSchemaStmt) && reinterpret_cast<AlterObjectSchemaStmt*>(tree)->objectType == OBJECT_TABLE);
  bool schema_renamed = IsA(tree, RenameStmt) && reinterpret_cast<RenameStmt*>(tree)->renameType == OBJECT_SCHEMA;
  if (!relation_moved && !schema_renamed) return PointerGetDatum(nullptr);
  pg::Spi spi;
  if (schema_renamed) {
    catalog::refresh_names(spi, {}, true);
    return PointerGetDatum(nullptr);
  }
  spi.exec_once(
      "SELECT objid FROM pg_catalog.pg_event_trigger_ddl_commands() "
      "WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass");
  catalog::refresh_names(spi, oids(spi));
  return PointerGetDatum(nullptr);
}

IVM_FUNCTION(ivm_on_sql_drop) {
  event_data(fcinfo, "ivm.on_sql_drop()");
  pg::Spi spi;
  spi.exec_once(
      "SELECT objid FROM pg_catalog.pg_event_trigger_dropped_objects() "
      "WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND objsubid = 0");
  std::vector<std::uint32_t> dropped = oids(spi);
  if (dropped.empty()) return PointerGetDatum(nullptr);
  // A safety net: view tables depend on what they read (pg_depend), so
  // PostgreSQL has refused, or dropped the readers too.  Views reading a
  // dropped relation that are not dropped themselves would lose their input.
  spi.exec_once(
      "SELECT v.name FROM ivm.dependencies d JOIN ivm.views v USING (viewid) "
      "WHERE d.relid = ANY (" +
      oid_array(dropped) + ") AND NOT v.viewid = ANY (" + oid_array(dropped) +
      ") "
      "AND v.parent IS DISTINCT FROM d.relid ORDER BY 1 LIMIT 1");
  if (spi.rows() > 0) {
    std::string view = spi.text(0, 1);
    throw Error(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST, "cannot drop a table that incremental view " + view + " reads",
                "Incremental view " + view + " is maintained from it.",
                "Drop the view first: SELECT ivm.drop_view('" + view + "');");
  }
  spi.exec_once("SELECT viewid::oid FROM ivm.views WHERE viewid = ANY (" + oid_array(dropped) +
                ") ORDER BY level DESC");
  for (std::uint32_t v : oids(spi))
    if (catalog::is_view(spi, v)) catalog::drop_view(spi, v);
  // A dropped unique index (or primary key) may have been what a view's
  // matching of rows by key relied on.
  catalog::recheck_unique_keys(spi);
  return PointerGetDatum(nullptr);
}

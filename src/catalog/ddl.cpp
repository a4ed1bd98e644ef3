// ddl.cpp: keeping ivm's catalog right when users drop tables.
//
// An sql_drop event trigger: dropping a table an incremental view reads is
// refused (the view would lose its input); dropping a view table itself
// removes the view's catalog rows, state and, when no other view needs them,
// the capture triggers of its base tables — as ivm.drop_view() does.
#include "plan/ir.hpp"  // plan headers first: they refuse to follow postgres.h
#include "catalog/catalog.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "commands/event_trigger.h"
}

#include <algorithm>

using namespace ivm;

IVM_FUNCTION(ivm_on_sql_drop) {
  if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
    throw pg::Error(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, "ivm.on_sql_drop() must be called as an event trigger");
  pg::Spi spi;
  spi.exec_once("SELECT objid FROM pg_catalog.pg_event_trigger_dropped_objects() "
                "WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND objsubid = 0");
  std::vector<std::uint32_t> dropped;
  for (uint64 i = 0; i < spi.rows(); ++i) dropped.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
  if (dropped.empty()) return PointerGetDatum(nullptr);
  std::string list;
  for (std::uint32_t r : dropped) list += (list.empty() ? "" : ",") + std::to_string(r);
  // Views reading a dropped relation that are not dropped themselves.
  spi.exec_once("SELECT d.relid, v.name FROM ivm.dependencies d JOIN ivm.views v USING (viewid) "
                "WHERE d.relid = ANY ('{" + list + "}'::oid[]) AND NOT v.viewid = ANY ('{" + list + "}'::oid[]) "
                "AND v.parent IS DISTINCT FROM d.relid ORDER BY 2 LIMIT 1");
  if (spi.rows() > 0) {
    std::string view = spi.text(0, 2);
    throw pg::Error(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                    "cannot drop a table that incremental view " + view + " reads",
                    "Incremental view " + view + " is maintained from it.",
                    "Drop the view first: SELECT ivm.drop_view('" + view + "');");
  }
  spi.exec_once("SELECT viewid::oid FROM ivm.views WHERE viewid = ANY ('{" + list + "}'::oid[]) ORDER BY level DESC");
  std::vector<std::uint32_t> views;
  for (uint64 i = 0; i < spi.rows(); ++i) views.push_back(static_cast<std::uint32_t>(std::stoul(spi.text(i, 1))));
  for (std::uint32_t v : views)
    if (catalog::is_view(spi, v)) catalog::drop_view(spi, v);
  return PointerGetDatum(nullptr);
}

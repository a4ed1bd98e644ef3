// catalog.hpp: ivm's catalog (ivm.views, ivm.dependencies) and the objects
// each view owns: its table, state tables, capture and guard triggers.
#pragma once
#include "plan/ir.hpp"
#include "pg/spi.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace ivm::catalog {

struct Dependent {
  std::uint32_t oid;
  int level;
  bool deferred;  // maintained by ivm.apply_deltas(), not by the writer
  plan::ViewPlan plan;
};

// DeltaTable: where the changes of a relation read by deferred views
// accumulate until they are applied (one per relation, shared by its readers).
struct DeltaTable {
  std::string name;                  // ivm_state.delta_<relid>
  std::vector<std::string> columns;  // quoted; the relation's columns
  // WAL-captured: a base table some view in mode 'wal' reads.  Its changes
  // reach the delta table from WAL (apply/wal.cpp), never from triggers,
  // except a TRUNCATE's (the BEFORE TRUNCATE trigger records the rows).
  bool from_wal = false;
};

bool is_view(pg::Spi& spi, std::uint32_t relid);
// lookup: the oid of the ivm view called `name`; raises if there is none.
std::uint32_t lookup(pg::Spi& spi, const std::string& name);
plan::ViewPlan load_plan(pg::Spi& spi, std::uint32_t view);
std::string definition(pg::Spi& spi, std::uint32_t view);
// dependents: every view reading `relation`, directly or through other
// views, in dependency order (cached per backend).
std::vector<Dependent> dependents(pg::Spi& spi, std::uint32_t relation);
// delta_table: the delta table of `relation`, or nullptr when no deferred view
// reads it (cached per backend).
const DeltaTable* delta_table(pg::Spi& spi, std::uint32_t relation);
// CaptureRoute: what a write to a relation owes ivm, cached per backend.
// When no view reads the relation directly in immediate mode, a write only
// appends its rows to the delta table: the trigger does that without SPI.
struct CaptureRoute {
  bool immediate_readers = true;  // some immediate view reads it directly
  std::uint32_t delta = 0;        // its delta table (0: none)
  std::vector<int> attnums;       // the relation's attnum of each delta column
};
const CaptureRoute& capture_route(pg::Spi& spi, std::uint32_t relation);
// cached_capture_route: the route if cached (no catalog access), else nullptr.
const CaptureRoute* cached_capture_route(std::uint32_t relation);
// delta_relations: relations with a delta table; with view != 0, only those the
// view reads, directly or through other views.
std::vector<std::uint32_t> delta_relations(pg::Spi& spi, std::uint32_t view);
// delta_closure: the relations whose deltas must be applied together with
// `relations`: every deferred view fed by them (directly or downstream)
// reads the same moment of all its inputs only if all of its pending inputs
// are consumed at once.
std::vector<std::uint32_t> delta_closure(pg::Spi& spi, std::vector<std::uint32_t> relations);
std::string view_mode(pg::Spi& spi, std::uint32_t view);
// lock_base_tables: SHARE-locks every table the view reads (through other
// views too), so that no writer changes them until this transaction ends.
void lock_base_tables(pg::Spi& spi, std::uint32_t view);
// set_mode: records the new mode and creates or drops delta tables.
void set_mode(pg::Spi& spi, std::uint32_t view, const std::string& mode);
// base_tables: every table the view reads, through other views too.
std::vector<std::uint32_t> base_tables(pg::Spi& spi, std::uint32_t view);
// full_replica_identity: gives a table read by a view in mode wal REPLICA
// IDENTITY FULL, so that decoding sees whole old rows.  Run before locking it.
void full_replica_identity(pg::Spi& spi, std::uint32_t relid);

std::uint32_t create_view(pg::Spi& spi, const std::string& name, const std::string& query, const std::string& mode);
void drop_view(pg::Spi& spi, std::uint32_t view);

}  // namespace ivm::catalog

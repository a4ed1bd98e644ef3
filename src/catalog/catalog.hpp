// catalog.hpp: ivm's catalog (ivm.views, ivm.dependencies) and the objects
// each view owns: its table, state tables, capture and guard triggers.
#pragma once
#include "plan/ir.hpp"
#include "pg/role.hpp"
#include "pg/spi.hpp"

#include <cstdint>
#include <set>
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
  std::uint32_t relid = 0;  // the delta table's own oid
};

// append_rows: appends the rows of a tuplestore (row type `source`) to a
// delta table, straight into its heap (no SPI, no plan): per row the source's
// k columns `attnums` (1-based, in the delta table's order), the multiplicity
// (the source's column m_attno, or the constant m when m_attno is 0), and
// the time `at`.  A read pointer of its own leaves the store as its other
// readers find it.  PostgreSQL's terms: call under pg_call.
void append_rows(Relation delta, Tuplestorestate* store, TupleDesc source, const int* attnums, int k, int m_attno,
                 int64 m, TimestampTz at);
// append_change: appends the change registered on `spi` as relation `from`
// to delta table dt, its columns found by name, with multiplicity m ("1",
// "-1", or "__m": the change's own column).  False, with nothing written,
// when there is no such relation or its columns do not match.
bool append_change(pg::Spi& spi, const DeltaTable& dt, const std::string& from, const std::string& m);

// catalog_owner: the owner of ivm's catalog (the role that created the
// extension).  ivm's bookkeeping runs as this role: its catalog tables, the
// delta tables and the objects in schema ivm_state are written by ivm alone,
// never directly by users.
Oid catalog_owner();
class AsCatalogOwner {
 public:
  AsCatalogOwner() : role_(catalog_owner()) {}

 private:
  pg::AsRole role_;
};

bool is_view(pg::Spi& spi, std::uint32_t relid);
// lookup: the oid of the ivm view called `name`; raises if there is none.
std::uint32_t lookup(pg::Spi& spi, const std::string& name);
plan::ViewPlan load_plan(pg::Spi& spi, std::uint32_t view);
std::string definition(pg::Spi& spi, std::uint32_t view);
// dependents: every view reading `relation`, directly or through other
// views, in dependency order (cached per backend).
std::vector<Dependent> dependents(pg::Spi& spi, std::uint32_t relation);
// catalog_generation: changes whenever anything cached from ivm's catalog in
// this backend may be stale (what is derived from view plans is keyed on it).
std::uint64_t catalog_generation();
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
// view_tables: the tables of all incremental views (cached per backend,
// like the routes).
const std::set<std::uint32_t>& view_tables(pg::Spi& spi);
const std::set<std::uint32_t>* cached_view_tables();  // nullptr if not cached
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

// OwnDdl: while alive, ivm's DDL event triggers let ivm's own statements
// through (sync_capture_triggers adds and drops its triggers as the modes of
// a table's readers change; the guards are there for everyone else's DDL).
class OwnDdl {
 public:
  OwnDdl();
  ~OwnDdl();
  OwnDdl(const OwnDdl&) = delete;
  OwnDdl& operator=(const OwnDdl&) = delete;
  static bool active();
};

// repair_restored: a view table whose guard trigger is being created while
// the view is already in ivm's catalog was restored from a dump (triggers come
// after the data): what a dump does not carry is made again, the pg_depend
// entries protecting the view and the parse tree of its definition (oids).
void repair_restored(pg::Spi& spi, std::uint32_t view);

// recheck_unique_keys: after a drop (of an index, a constraint, ...) or the
// creation of an index or constraint, every view that matches rows by a
// unique key (plan::ViewPlan::unique_key), or could (key_provable), proves it
// again from its inputs as they are now, in dependency order, so that views
// over it follow: one that cannot falls back to the general maintenance, one
// that now can takes the key paths.
// The views record no pg_depend entry on those indexes: a view table
// depending on an index would make pg_dump order a table after an index.
void recheck_unique_keys(pg::Spi& spi);

// upgrade_storage: run by the extension update for each view: gives a view
// planned before MIN/MAX counts (plan format < 3) the state columns that count
// the rows holding each extreme, and its tables room for updates in place.
void upgrade_storage(pg::Spi& spi, std::uint32_t view);

// create_view: a user's view (the views ivm makes of its subqueries are
// created inside, as internal views in ivm_state).
std::uint32_t create_view(pg::Spi& spi, const std::string& name, const std::string& query, const std::string& mode);
void drop_view(pg::Spi& spi, std::uint32_t view);
// follow_owner: hands what ivm keeps for a view (state tables, internal views)
// to the owner of the view's table, which ALTER TABLE ... OWNER TO changed.
void follow_owner(pg::Spi& spi, std::uint32_t view);

// refresh_names: after relations (or, with all, schemas) were renamed or
// moved, rewrites the names baked into the stored plans and definitions of
// the views that are or read those relations.  Generated SQL names relations
// by name; the stored query tree names them by oid and deparses anew.
void refresh_names(pg::Spi& spi, const std::vector<std::uint32_t>& relations, bool all = false);

// Progress of populating a view (progress.cpp).  progress_init defines the
// ivm.progress_rows setting: rows read between two NOTICEs (0: none).
void progress_init();
int progress_interval();
// PopulateProgress: while alive, ivm.progress_tick() counts the rows the
// populating statements read and reports every ivm.progress_rows of them.
// Per-backend state: also reset at transaction abort (progress_reset).
class PopulateProgress {
 public:
  explicit PopulateProgress(const std::string& view);
  ~PopulateProgress();
  PopulateProgress(const PopulateProgress&) = delete;
  PopulateProgress& operator=(const PopulateProgress&) = delete;
  void done(std::uint64_t view_rows);  // reports the total if progress was reported
};
void progress_reset();

}  // namespace ivm::catalog

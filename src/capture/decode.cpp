// decode.cpp: the logical-decoding output plugin `ivm`, for consumers of view
// changes (DESIGN.md §7).
//
// A slot created with plugin 'ivm' streams, for committed transactions only,
// one JSON object per changed row of the selected incremental views, between
// a begin and a commit record of the transaction:
//
//   {"op":"begin","xid":750,"commit_lsn":"0/1A2B3C4","commit_time":"2026-04-01T10:00:00.1+00:00"}
//   {"view":"public.churn_alerts","op":"delete","old":{"customer_id":2,...}}
//   {"op":"commit","xid":750,"commit_lsn":"0/1A2B3C4","commit_time":"2026-04-01T10:00:00.1+00:00"}
//
// Replayed in order (insert the new row, delete one row equal to the old one,
// an update being both) the records rebuild each view exactly, whether
// maintenance changed a view row in place or deleted and inserted it: view
// tables have REPLICA IDENTITY FULL (catalog.cpp), so every delete and update
// carries the whole old row.  Transactions that change no selected relation
// emit nothing, not even begin and commit.
//
// Options: views (comma-separated names; default every view), include-base
// (also the changes of the tables those views read, through other views too,
// as {"table":...} records), format (json, one object per message).
//
// Which relations are views is read from ivm.views and ivm.dependencies with
// the historic snapshot of the change being decoded, so a view created or
// dropped in the middle of the stream starts or stops being streamed exactly
// there.  That is why both are user catalog tables (ivm--0.1.sql): the slot
// keeps their old row versions from being vacuumed, and their changes inside
// a transaction are visible to decoding in command order.  Internal views
// (subqueries, schema ivm_state), state and delta tables are never streamed.
#include "pg/guard.hpp"

extern "C" {
#include "access/genam.h"
#include "replication/logical.h"
#include "replication/output_plugin.h"
#include "utils/datetime.h"
#include "utils/json.h"
PGDLLEXPORT void _PG_output_plugin_init(OutputPluginCallbacks* cb);
}

#include <new>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace ivm::capture {

namespace {

using pg::Error;
using pg::pg_call;

// ViewName: one name of the views option; an empty schema matches any schema.
struct ViewName {
  std::string schema, name;
};

struct Options {
  bool all_views = true;
  std::vector<ViewName> views;
  bool include_base = false;
  // internal 'apply': the stream ivm's own WAL-mode applier reads (wal.cpp),
  // not a consumer's: the changes of WAL-captured base tables (see
  // write_captured), nothing of views.
  bool internal_apply = false;
};

// Target: a relation whose changes the stream carries, and how it is named there.
struct Target {
  bool is_view;
  std::string name;  // schema-qualified, quoted where SQL would need it
};

// State: one decoding session.  Lives in the decoding context's memory; a
// reset callback on that context runs its destructor, so the C++ members are
// freed even when decoding ends with an error and no shutdown callback runs.
struct State {
  Options options;
  MemoryContext cxt = nullptr;  // per-record memory, reset after each record

  // ivm's catalog as of the change being decoded.  catalog_valid is cleared
  // by relcache invalidations and by decoded changes of ivm.views or
  // ivm.dependencies; the next change reloads it.
  bool catalog_valid = false;
  Oid views_rel = InvalidOid, deps_rel = InvalidOid;
  std::unordered_map<Oid, Target> targets;
  std::unordered_set<Oid> watched;  // relations whose invalidation may change targets
  bool loaded_once = false;         // names of the views option were checked
  bool warned_dropped = false;      // told that ivm's catalog is gone

  bool begun = false;  // the current transaction's begin record is written
  int unreported = 0;  // changes since the walsender last heard of progress
};

// The session of this backend (a backend decodes one slot at a time); the
// relcache callback, registered once per backend, reaches it through this.
State* current = nullptr;
bool callback_registered = false;

void on_relcache(Datum, Oid relid) {
  if (current && (relid == InvalidOid || current->watched.count(relid) > 0)) current->catalog_valid = false;
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

[[noreturn]] void bad_views(const std::string& text, const std::string& detail) {
  throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "invalid value for option \"views\": \"" + text + "\"", detail,
              "List incremental views separated by commas, e.g. views=customer_360,public.churn_alerts.");
}

// parse_views: the names of the views option, read as SQL reads names:
// name or schema.name, each part quoted ("Name") or folded to lower case.
std::vector<ViewName> parse_views(const std::string& text) {
  std::vector<ViewName> out;
  std::vector<std::string> parts;
  std::size_t i = 0, n = text.size();
  auto blank = [&] {
    while (i < n && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n')) ++i;
  };
  for (;;) {
    blank();
    std::string part;
    if (i < n && text[i] == '"') {
      for (++i;; ++i) {
        if (i >= n) bad_views(text, "A quoted name is not terminated.");
        if (text[i] == '"') {
          if (i + 1 < n && text[i + 1] == '"') {
            part += '"';
            ++i;
          } else {
            ++i;
            break;
          }
        } else {
          part += text[i];
        }
      }
      if (part.empty()) bad_views(text, "A quoted name is empty.");
    } else {
      while (i < n && text[i] != ',' && text[i] != '.' && text[i] != '"' && text[i] != ' ' && text[i] != '\t' &&
             text[i] != '\n') {
        char c = text[i++];
        part += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
      }
      if (part.empty()) bad_views(text, "A name is missing.");
    }
    parts.push_back(part);
    blank();
    if (i < n && text[i] == '.') {
      ++i;
      continue;
    }
    if (i < n && text[i] != ',') bad_views(text, "Names are separated by commas.");
    if (parts.size() > 2) bad_views(text, "A name is a view name, optionally qualified with its schema.");
    out.push_back(parts.size() == 2 ? ViewName{parts[0], parts[1]} : ViewName{"", parts[0]});
    parts.clear();
    if (i >= n) return out;
    ++i;  // the comma
  }
}

Options parse_options(List* defs) {
  Options o;
  ListCell* lc;
  foreach (lc, defs) {
    auto* d = static_cast<DefElem*>(lfirst(lc));
    std::string name = d->defname;
    const char* value = d->arg ? strVal(d->arg) : nullptr;
    if (name == "views") {
      if (!value) throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "option \"views\" needs a value");
      o.views = parse_views(value);
      o.all_views = false;
    } else if (name == "include-base") {
      bool b = true;
      if (value && !parse_bool(value, &b))
        throw Error(ERRCODE_INVALID_PARAMETER_VALUE,
                    "invalid value for option \"include-base\": \"" + std::string(value) + "\"", "",
                    "Use true or false.");
      o.include_base = b;
    } else if (name == "internal") {
      if (!value || std::string(value) != "apply")
        throw Error(ERRCODE_INVALID_PARAMETER_VALUE,
                    "invalid value for option \"internal\": \"" + std::string(value ? value : "") + "\"", "",
                    "Option \"internal\" is for ivm's own applier; its only value is apply.");
      o.internal_apply = true;
    } else if (name == "format") {
      if (!value || std::string(value) != "json")
        throw Error(ERRCODE_INVALID_PARAMETER_VALUE,
                    "invalid value for option \"format\": \"" + std::string(value ? value : "") + "\"", "",
                    "The only format is json.");
    } else {
      throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "unrecognized option \"" + name + "\" of output plugin ivm", "",
                  "Valid options are views, include-base and format.");
    }
  }
  return o;
}

// ---------------------------------------------------------------------------
// ivm's catalog, read with the historic snapshot
// ---------------------------------------------------------------------------

// CatalogRows: what read_catalog found, in palloc'd memory (it runs under
// pg_call, where nothing may throw: C++ containers are filled afterwards).
struct CatalogRows {
  Oid views_rel, deps_rel;
  bool dropped;  // ivm's catalog existed at this point of the stream, but is gone now
  int nviews;
  Oid* view;
  bool* internal;
  bool* wal;         // mode 'wal'
  char** nsp;        // view's schema
  char** relname;    // view's name
  char** qualified;  // both, quoted as needed
  int ndeps;
  Oid* dep_view;
  Oid* dep_rel;
  bool* dep_is_view;
  char** dep_nsp;        // base table's schema (NULL for views)
  char** dep_qualified;  // base table's name (NULL for views)
};

AttrNumber column(TupleDesc desc, const char* name) {
  for (int i = 0; i < desc->natts; i++)
    if (strcmp(NameStr(TupleDescAttr(desc, i)->attname), name) == 0) return static_cast<AttrNumber>(i + 1);
  elog(ERROR, "ivm catalog column \"%s\" not found", name);
  pg_unreachable();
}

template <typename T>
void resize(T*& array, int cap) {
  array = static_cast<T*>(repalloc(array, sizeof(T) * cap));
}

// exists_now: whether relation relid exists in the present, not in the past
// decoding sees.  Decoding reads a user catalog table through its present
// pg_class entry, and fails on one dropped since (DROP EXTENSION ivm).
bool exists_now(Oid relid) {
  ScanKeyData key;
  ScanKeyInit(&key, Anum_pg_class_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
  Relation pg_class = table_open(RelationRelationId, AccessShareLock);
  SysScanDesc scan =
      systable_beginscan(pg_class, ClassOidIndexId, true, GetNonHistoricCatalogSnapshot(RelationRelationId), 1, &key);
  bool found = HeapTupleIsValid(systable_getnext(scan));
  systable_endscan(scan);
  table_close(pg_class, AccessShareLock);
  return found;
}

// read_catalog: scans ivm.views and ivm.dependencies (small tables, no index
// needed).  systable scans with no snapshot use the catalog snapshot, which
// during decoding is the historic one.  Runs under pg_call, in cxt.
CatalogRows* read_catalog() {
  auto* r = static_cast<CatalogRows*>(palloc0(sizeof(CatalogRows)));
  Oid nsp = get_namespace_oid("ivm", true);
  if (!OidIsValid(nsp)) return r;  // the extension does not exist (yet)
  r->views_rel = get_relname_relid("views", nsp);
  r->deps_rel = get_relname_relid("dependencies", nsp);
  if (!OidIsValid(r->views_rel) || !OidIsValid(r->deps_rel)) return r;
  if (!exists_now(r->views_rel) || !exists_now(r->deps_rel)) {
    r->dropped = true;
    return r;
  }

  Relation rel = table_open(r->views_rel, AccessShareLock);
  TupleDesc desc = RelationGetDescr(rel);
  AttrNumber a_view = column(desc, "viewid"), a_internal = column(desc, "internal"), a_mode = column(desc, "mode");
  int cap = 16;
  r->view = static_cast<Oid*>(palloc(sizeof(Oid) * cap));
  r->internal = static_cast<bool*>(palloc(sizeof(bool) * cap));
  r->wal = static_cast<bool*>(palloc(sizeof(bool) * cap));
  SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, nullptr, 0, nullptr);
  HeapTuple tuple;
  while (HeapTupleIsValid(tuple = systable_getnext(scan))) {
    bool null1, null2;
    Datum view = heap_getattr(tuple, a_view, desc, &null1);
    Datum internal = heap_getattr(tuple, a_internal, desc, &null2);
    bool null3;
    Datum mode = heap_getattr(tuple, a_mode, desc, &null3);
    if (null1) continue;
    if (r->nviews == cap) {
      cap *= 2;
      resize(r->view, cap);
      resize(r->internal, cap);
      resize(r->wal, cap);
    }
    r->view[r->nviews] = DatumGetObjectId(view);
    r->internal[r->nviews] = !null2 && DatumGetBool(internal);
    r->wal[r->nviews] = !null3 && strcmp(TextDatumGetCString(mode), "wal") == 0;
    r->nviews++;
  }
  systable_endscan(scan);
  table_close(rel, AccessShareLock);

  r->nsp = static_cast<char**>(palloc0(sizeof(char*) * (r->nviews + 1)));
  r->relname = static_cast<char**>(palloc0(sizeof(char*) * (r->nviews + 1)));
  r->qualified = static_cast<char**>(palloc0(sizeof(char*) * (r->nviews + 1)));
  for (int i = 0; i < r->nviews; i++) {
    char* name = get_rel_name(r->view[i]);
    if (!name) continue;  // its table is being dropped
    r->relname[i] = name;
    r->nsp[i] = get_namespace_name(get_rel_namespace(r->view[i]));
    r->qualified[i] = pstrdup(quote_qualified_identifier(r->nsp[i], name));
  }

  rel = table_open(r->deps_rel, AccessShareLock);
  desc = RelationGetDescr(rel);
  AttrNumber d_view = column(desc, "viewid"), d_rel = column(desc, "relid"), d_is_view = column(desc, "is_view");
  cap = 16;
  r->dep_view = static_cast<Oid*>(palloc(sizeof(Oid) * cap));
  r->dep_rel = static_cast<Oid*>(palloc(sizeof(Oid) * cap));
  r->dep_is_view = static_cast<bool*>(palloc(sizeof(bool) * cap));
  scan = systable_beginscan(rel, InvalidOid, false, nullptr, 0, nullptr);
  while (HeapTupleIsValid(tuple = systable_getnext(scan))) {
    bool n1, n2, n3;
    Datum view = heap_getattr(tuple, d_view, desc, &n1);
    Datum relid = heap_getattr(tuple, d_rel, desc, &n2);
    Datum is_view = heap_getattr(tuple, d_is_view, desc, &n3);
    if (n1 || n2) continue;
    if (r->ndeps == cap) {
      cap *= 2;
      resize(r->dep_view, cap);
      resize(r->dep_rel, cap);
      resize(r->dep_is_view, cap);
    }
    r->dep_view[r->ndeps] = DatumGetObjectId(view);
    r->dep_rel[r->ndeps] = DatumGetObjectId(relid);
    r->dep_is_view[r->ndeps] = !n3 && DatumGetBool(is_view);
    r->ndeps++;
  }
  systable_endscan(scan);
  table_close(rel, AccessShareLock);

  r->dep_nsp = static_cast<char**>(palloc0(sizeof(char*) * (r->ndeps + 1)));
  r->dep_qualified = static_cast<char**>(palloc0(sizeof(char*) * (r->ndeps + 1)));
  for (int i = 0; i < r->ndeps; i++) {
    if (r->dep_is_view[i]) continue;
    char* name = get_rel_name(r->dep_rel[i]);
    if (!name) continue;
    r->dep_nsp[i] = get_namespace_name(get_rel_namespace(r->dep_rel[i]));
    r->dep_qualified[i] = pstrdup(quote_qualified_identifier(r->dep_nsp[i], name));
  }
  return r;
}

bool private_schema(const char* nsp) { return nsp && (strcmp(nsp, "ivm_state") == 0 || strcmp(nsp, "ivm") == 0); }

// build_targets: which relations the stream carries, as of the change at hand.
void build_targets(State& s) {
  CatalogRows* r = pg_call([&] {
    MemoryContext old = MemoryContextSwitchTo(s.cxt);
    CatalogRows* rows = read_catalog();
    MemoryContextSwitchTo(old);
    return rows;
  });

  s.views_rel = r->views_rel;
  s.deps_rel = r->deps_rel;
  s.targets.clear();
  s.watched.clear();
  s.watched.insert(r->views_rel);
  s.watched.insert(r->deps_rel);
  if (s.options.internal_apply) {
    // WAL-captured: the base tables (not views: ivm records a view's own
    // changes as it makes them) that some view in mode 'wal' reads directly.
    std::unordered_set<Oid> wal_views;
    for (int i = 0; i < r->nviews; i++)
      if (r->wal[i]) wal_views.insert(r->view[i]);
    for (int i = 0; i < r->ndeps; i++)
      if (!r->dep_is_view[i] && wal_views.count(r->dep_view[i]) && r->dep_qualified[i])
        s.targets[r->dep_rel[i]] = Target{false, r->dep_qualified[i]};
    s.loaded_once = true;
    pg_call([&] { MemoryContextReset(s.cxt); });
    return;
  }
  std::vector<bool> matched(s.options.views.size(), false);
  std::vector<Oid> selected;
  for (int i = 0; i < r->nviews; i++) {
    s.watched.insert(r->view[i]);  // a rename may change what the views option selects
    if (r->internal[i] || !r->relname[i] || private_schema(r->nsp[i])) continue;
    bool take = s.options.all_views;
    for (std::size_t k = 0; k < s.options.views.size(); k++) {
      const ViewName& v = s.options.views[k];
      if (v.name == r->relname[i] && (v.schema.empty() || v.schema == r->nsp[i])) {
        take = true;
        matched[k] = true;
      }
    }
    if (!take) continue;
    s.targets[r->view[i]] = Target{true, r->qualified[i]};
    selected.push_back(r->view[i]);
  }

  if (s.options.include_base) {
    // The tables the selected views read, directly or through other views
    // (internal ones included): what a consumer replicating the inputs needs.
    std::unordered_multimap<Oid, int> reads;  // view -> index of its dependency rows
    for (int i = 0; i < r->ndeps; i++) reads.emplace(r->dep_view[i], i);
    std::unordered_set<Oid> seen(selected.begin(), selected.end());
    std::vector<Oid> todo = selected;
    while (!todo.empty()) {
      Oid v = todo.back();
      todo.pop_back();
      auto range = reads.equal_range(v);
      for (auto it = range.first; it != range.second; ++it) {
        int i = it->second;
        if (r->dep_is_view[i]) {
          if (seen.insert(r->dep_rel[i]).second) todo.push_back(r->dep_rel[i]);
        } else if (r->dep_qualified[i] && !private_schema(r->dep_nsp[i]) && !s.targets.count(r->dep_rel[i])) {
          s.targets[r->dep_rel[i]] = Target{false, r->dep_qualified[i]};
          s.watched.insert(r->dep_rel[i]);
        }
      }
    }
  }

  // A name that matches no view where the session starts decoding is most
  // likely a typo: say so once.  (It may also be a view created further on in
  // the stream, which is why this is no error.)
  std::vector<std::string> warnings;
  for (std::size_t k = 0; k < matched.size() && !s.loaded_once && !r->dropped; k++)
    if (!matched[k]) {
      const ViewName& v = s.options.views[k];
      warnings.push_back(v.schema.empty() ? v.name : v.schema + "." + v.name);
    }
  s.loaded_once = true;
  bool dropped = r->dropped && !s.warned_dropped;
  s.warned_dropped = s.warned_dropped || r->dropped;
  pg_call([&] {
    MemoryContextReset(s.cxt);
    for (const auto& w : warnings)
      ereport(WARNING, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("incremental view \"%s\" does not exist at this point of the stream", w.c_str()),
                        errdetail("Option \"views\" names it; its changes are streamed from its creation on.")));
    // The views were dropped with it, their consumers' streams end there
    // anyway; the slot goes on with what comes after.
    if (dropped)
      ereport(WARNING, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("changes of incremental views made before extension ivm was dropped are not streamed"),
                        errdetail("The ivm catalog this part of the stream needs is gone."),
                        errhint("Let consumers catch up before dropping the extension.")));
  });
}

void load_catalog(State& s) {
  // Valid from now on unless an invalidation arrives while reading (then the
  // next change reads again); never used half-built.
  s.catalog_valid = true;
  try {
    build_targets(s);
  } catch (...) {
    s.catalog_valid = false;
    throw;
  }
}

// ---------------------------------------------------------------------------
// JSON.  Everything below runs under pg_call, in the per-record context.
// ---------------------------------------------------------------------------

char* output_text(Datum value, Oid typid) {
  Oid fn;
  bool varlena;
  getTypeOutputInfo(typid, &fn, &varlena);
  return OidOutputFunctionCall(fn, value);
}

// PostgreSQL prints NaN and infinities of numeric types as words: JSON has no
// such numbers, so they travel as strings.
bool json_number(const char* s) {
  if (*s == '-') ++s;
  return *s >= '0' && *s <= '9';
}

// append_value: a value as typed JSON, as PostgreSQL's to_json writes it:
// numbers, booleans, ISO-8601 dates and times (intervals too, unlike
// to_json), json as is, arrays as arrays, composites as objects, everything
// else as its text in a string.  Nothing depends on the session's DateStyle
// or IntervalStyle, which in a walsender are the server's defaults.
void append_value(StringInfo out, Datum value, Oid typid) {
  Oid base = getBaseType(typid);
  switch (base) {
    case BOOLOID: appendStringInfoString(out, DatumGetBool(value) ? "true" : "false"); return;
    case INT2OID:
    case INT4OID:
    case INT8OID:
    case FLOAT4OID:
    case FLOAT8OID:
    case NUMERICOID: {
      char* s = output_text(value, typid);
      if (json_number(s))
        appendStringInfoString(out, s);
      else
        escape_json(out, s);
      return;
    }
    case DATEOID:
    case TIMEOID:
    case TIMETZOID:
    case TIMESTAMPOID:
    case TIMESTAMPTZOID: escape_json(out, JsonEncodeDateTime(nullptr, value, base, nullptr)); return;
    case INTERVALOID: {
      // ISO 8601 too ("P1DT2H"), whatever the session's IntervalStyle.
      struct pg_itm itm;
      char buf[MAXDATELEN + 1];
      interval2itm(*DatumGetIntervalP(value), &itm);
      EncodeInterval(&itm, INTSTYLE_ISO_8601, buf);
      escape_json(out, buf);
      return;
    }
    case JSONOID:
    case JSONBOID: appendStringInfoString(out, output_text(value, typid)); return;
    default: break;
  }
  if (OidIsValid(get_element_type(base)))
    appendStringInfoString(out, text_to_cstring(DatumGetTextPP(DirectFunctionCall1(array_to_json, value))));
  else if (type_is_rowtype(base))
    appendStringInfoString(out, text_to_cstring(DatumGetTextPP(DirectFunctionCall1(row_to_json, value))));
  else
    escape_json(out, output_text(value, typid));
}

bool unchanged_toast(Form_pg_attribute att, Datum value) {
  return att->attlen == -1 && VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value));
}

// append_row: {"column": value, ...} of a decoded row.
//  - key_only: the old row of a relation that logs only its key (replica
//    identity DEFAULT or USING INDEX) has NULL in every other column; only
//    the key columns (never NULL) are written.
//  - old: an update's new row may hold, for a large value the update did not
//    touch, a pointer into the TOAST table that decoding cannot follow; the
//    value is then taken from the old row when it has it, else left out (a
//    column missing from "new" is unchanged).
void append_row(StringInfo out, TupleDesc desc, HeapTuple tuple, HeapTuple old, bool key_only) {
  appendStringInfoChar(out, '{');
  bool first = true;
  for (int i = 0; i < desc->natts; i++) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    if (att->attisdropped) continue;
    bool null;
    Datum value = heap_getattr(tuple, i + 1, desc, &null);
    if (null && key_only) continue;
    if (!null && unchanged_toast(att, value)) {
      bool old_null = true;
      if (old) value = heap_getattr(old, i + 1, desc, &old_null);
      if (old_null || unchanged_toast(att, value)) continue;
    }
    if (!first) appendStringInfoChar(out, ',');
    first = false;
    escape_json(out, NameStr(att->attname));
    appendStringInfoChar(out, ':');
    if (null)
      appendStringInfoString(out, "null");
    else
      append_value(out, value, att->atttypid);
  }
  appendStringInfoChar(out, '}');
}

void write_xact(LogicalDecodingContext* ctx, const char* op, TransactionId xid, XLogRecPtr lsn, TimestampTz time,
                bool last_write) {
  OutputPluginPrepareWrite(ctx, last_write);
  appendStringInfo(ctx->out, "{\"op\":\"%s\",\"xid\":%u,\"commit_lsn\":\"%X/%X\",\"commit_time\":", op, xid,
                   static_cast<uint32>(lsn >> 32), static_cast<uint32>(lsn));  // LSN_FORMAT_ARGS is C-only
  escape_json(ctx->out, JsonEncodeDateTime(nullptr, TimestampTzGetDatum(time), TIMESTAMPTZOID, nullptr));
  appendStringInfoChar(ctx->out, '}');
  OutputPluginWrite(ctx, last_write);
}

// begin_if_needed: the begin record goes out with the transaction's first
// streamed change, so that transactions streaming nothing stay silent.
void begin_if_needed(LogicalDecodingContext* ctx, State& s, ReorderBufferTXN* txn) {
  if (s.begun) return;
  write_xact(ctx, "begin", txn->xid, txn->final_lsn, txn->xact_time.commit_time, false);
  s.begun = true;
}

// start_record: opens the record of one change of relation t:
// {"view":"<name>","op":"<op>" (or "table" for a base table).
void start_record(LogicalDecodingContext* ctx, State& s, ReorderBufferTXN* txn, const Target& t, const char* op) {
  begin_if_needed(ctx, s, txn);
  OutputPluginPrepareWrite(ctx, true);
  appendStringInfoString(ctx->out, t.is_view ? "{\"view\":" : "{\"table\":");
  escape_json(ctx->out, t.name.c_str());
  appendStringInfo(ctx->out, ",\"op\":\"%s\"", op);
}

void write_change(LogicalDecodingContext* ctx, State& s, ReorderBufferTXN* txn, const Target& t, Relation rel,
                  ReorderBufferChange* change) {
  const char* op;
  switch (change->action) {
    case REORDER_BUFFER_CHANGE_INSERT: op = "insert"; break;
    case REORDER_BUFFER_CHANGE_UPDATE: op = "update"; break;
    case REORDER_BUFFER_CHANGE_DELETE: op = "delete"; break;
    default: return;
  }
  HeapTuple old_row = change->data.tp.oldtuple ? &change->data.tp.oldtuple->tuple : nullptr;
  HeapTuple new_row = change->data.tp.newtuple ? &change->data.tp.newtuple->tuple : nullptr;
  bool full = rel->rd_rel->relreplident == REPLICA_IDENTITY_FULL;
  if (t.is_view && !old_row && change->action != REORDER_BUFFER_CHANGE_INSERT)
    // Without the old row a consumer cannot tell which view row went away.
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("change of incremental view %s carries no old row", t.name.c_str()),
                    errdetail("The view table's replica identity is not FULL."),
                    errhint("Run ALTER TABLE %s REPLICA IDENTITY FULL and stream from a new slot.", t.name.c_str())));
  start_record(ctx, s, txn, t, op);
  TupleDesc desc = RelationGetDescr(rel);
  if (old_row) {
    appendStringInfoString(ctx->out, ",\"old\":");
    append_row(ctx->out, desc, old_row, nullptr, !full);
  }
  if (new_row) {
    appendStringInfoString(ctx->out, ",\"new\":");
    append_row(ctx->out, desc, new_row, old_row, false);
  }
  appendStringInfoChar(ctx->out, '}');
  OutputPluginWrite(ctx, true);
}

// append_text_row: {"column":"text",...} of a decoded row, for the internal
// stream: every value as its type's text output (null for NULL), which the
// applier casts back with the type's input function, so any type survives the
// trip exactly (both run in the applier's session, with the same settings).
// A large value an update left untouched comes from the old row (replica
// identity FULL logs it whole); without it the row cannot be rebuilt.
void append_text_row(StringInfo out, Relation rel, HeapTuple tuple, HeapTuple old) {
  TupleDesc desc = RelationGetDescr(rel);
  appendStringInfoChar(out, '{');
  bool first = true;
  for (int i = 0; i < desc->natts; i++) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    if (att->attisdropped) continue;
    bool null;
    Datum value = heap_getattr(tuple, i + 1, desc, &null);
    if (!null && unchanged_toast(att, value)) {
      bool old_null = true;
      if (old) value = heap_getattr(old, i + 1, desc, &old_null);
      if (old_null || unchanged_toast(att, value))
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("update of table \"%s\" read by a view in mode wal lacks the value of column \"%s\"",
                               RelationGetRelationName(rel), NameStr(att->attname)),
                        errdetail("The table's replica identity is not FULL."),
                        errhint("Run ALTER TABLE %s REPLICA IDENTITY FULL and rebuild its views with ivm.refresh().",
                                RelationGetRelationName(rel))));
    }
    if (!first) appendStringInfoChar(out, ',');
    first = false;
    escape_json(out, NameStr(att->attname));
    appendStringInfoChar(out, ':');
    if (null)
      appendStringInfoString(out, "null");
    else
      escape_json(out, output_text(value, att->atttypid));
  }
  appendStringInfoChar(out, '}');
}

void write_captured_row(LogicalDecodingContext* ctx, Relation rel, HeapTuple tuple, HeapTuple old, int sign) {
  OutputPluginPrepareWrite(ctx, true);
  appendStringInfo(ctx->out, "{\"r\":%u,\"m\":%d,\"d\":", RelationGetRelid(rel), sign);
  append_text_row(ctx->out, rel, tuple, old);
  appendStringInfoChar(ctx->out, '}');
  OutputPluginWrite(ctx, true);
}

// write_captured: one change of a WAL-captured base table for ivm's applier,
// as rows of its delta table: an insert is +new, a delete -old, an update
// -old +new.  Old rows must be whole: create_view gives the tables that wal
// views read REPLICA IDENTITY FULL, and a change without its old row is an
// error rather than a silently wrong view.
void write_captured(LogicalDecodingContext* ctx, State& s, Relation rel, ReorderBufferChange* change) {
  HeapTuple old_row = change->data.tp.oldtuple ? &change->data.tp.oldtuple->tuple : nullptr;
  HeapTuple new_row = change->data.tp.newtuple ? &change->data.tp.newtuple->tuple : nullptr;
  if (change->action != REORDER_BUFFER_CHANGE_INSERT &&
      (!old_row || rel->rd_rel->relreplident != REPLICA_IDENTITY_FULL))
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("change of table \"%s\" read by a view in mode wal carries no whole old row",
                           RelationGetRelationName(rel)),
                    errdetail("The table's replica identity is not FULL."),
                    errhint("Run ALTER TABLE %s REPLICA IDENTITY FULL and rebuild its views with ivm.refresh().",
                            RelationGetRelationName(rel))));
  s.begun = true;
  switch (change->action) {
    case REORDER_BUFFER_CHANGE_INSERT:
      if (new_row) write_captured_row(ctx, rel, new_row, nullptr, 1);
      break;
    case REORDER_BUFFER_CHANGE_UPDATE:
      write_captured_row(ctx, rel, old_row, nullptr, -1);
      if (new_row) write_captured_row(ctx, rel, new_row, old_row, 1);
      break;
    case REORDER_BUFFER_CHANGE_DELETE: write_captured_row(ctx, rel, old_row, nullptr, -1); break;
    default: break;
  }
}

// report_progress: tells the walsender how far decoding got every hundred
// changes and at each commit, also when nothing was written, so that a long
// stretch of changes this stream leaves out neither times the connection out
// nor holds back the slot's confirmed position (as pgoutput does).
void report_progress(LogicalDecodingContext* ctx, State& s, bool skipped_xact) {
  if (ctx->end_xact || ++s.unreported >= 100) {
    OutputPluginUpdateProgress(ctx, skipped_xact);
    s.unreported = 0;
  }
}

// write_record: runs f, which writes records, under pg_call in the
// per-record memory context, emptied afterwards.
template <typename F>
void write_record(State& s, F&& f) {
  pg_call([&] {
    MemoryContext old = MemoryContextSwitchTo(s.cxt);
    f();
    MemoryContextSwitchTo(old);
    MemoryContextReset(s.cxt);
  });
}

// ---------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------

State& state(LogicalDecodingContext* ctx) { return *static_cast<State*>(ctx->output_plugin_private); }

void on_startup(LogicalDecodingContext* ctx, OutputPluginOptions* opt, bool) {
  pg::cpp_callback([&] {
    State* s = pg_call([&] { return static_cast<State*>(MemoryContextAllocZero(ctx->context, sizeof(State))); });
    new (s) State();
    pg_call([&] {
      auto* cb =
          static_cast<MemoryContextCallback*>(MemoryContextAllocZero(ctx->context, sizeof(MemoryContextCallback)));
      cb->func = [](void* arg) {
        auto* dying = static_cast<State*>(arg);
        if (current == dying) current = nullptr;
        dying->~State();
      };
      cb->arg = s;
      MemoryContextRegisterResetCallback(ctx->context, cb);
      s->cxt = AllocSetContextCreate(ctx->context, "ivm output plugin", ALLOCSET_DEFAULT_SIZES);
      if (!callback_registered) {
        CacheRegisterRelcacheCallback(on_relcache, (Datum)0);
        callback_registered = true;
      }
    });
    ctx->output_plugin_private = s;
    current = s;
    s->options = parse_options(ctx->output_plugin_options);
    opt->output_type = OUTPUT_PLUGIN_TEXTUAL_OUTPUT;
    opt->receive_rewrites = false;
  });
}

void on_begin(LogicalDecodingContext* ctx, ReorderBufferTXN*) {
  pg::cpp_callback([&] { state(ctx).begun = false; });
}

void on_change(LogicalDecodingContext* ctx, ReorderBufferTXN* txn, Relation rel, ReorderBufferChange* change) {
  pg::cpp_callback([&] {
    State& s = state(ctx);
    pg_call([&] { report_progress(ctx, s, false); });
    // A change of ivm's catalog (a view is created, dropped or changes mode
    // in this transaction): the changes after it see the catalog as it is
    // from there on, read again once a change needs it.
    Oid relid = RelationGetRelid(rel);
    auto ivm_catalog = [&] { return OidIsValid(s.views_rel) && (relid == s.views_rel || relid == s.deps_rel); };
    if (!ivm_catalog() && !s.catalog_valid) load_catalog(s);
    if (ivm_catalog()) {
      s.catalog_valid = false;
      return;
    }
    auto it = s.targets.find(relid);
    if (it == s.targets.end()) return;
    const Target& t = it->second;
    if (s.options.internal_apply)
      write_record(s, [&] { write_captured(ctx, s, rel, change); });
    else
      write_record(s, [&] { write_change(ctx, s, txn, t, rel, change); });
  });
}

void on_truncate(LogicalDecodingContext* ctx, ReorderBufferTXN* txn, int nrelations, Relation relations[],
                 ReorderBufferChange*) {
  pg::cpp_callback([&] {
    State& s = state(ctx);
    // The applier learns of a TRUNCATE from the table's BEFORE TRUNCATE
    // trigger, which records the vanishing rows in the delta table in the
    // truncating transaction (decoding no longer sees them).
    if (s.options.internal_apply) return;
    if (!s.catalog_valid) load_catalog(s);
    for (int i = 0; i < nrelations; i++) {
      auto it = s.targets.find(RelationGetRelid(relations[i]));
      if (it == s.targets.end()) continue;
      const Target& t = it->second;
      write_record(s, [&] {
        start_record(ctx, s, txn, t, "truncate");
        appendStringInfoChar(ctx->out, '}');
        OutputPluginWrite(ctx, true);
      });
    }
  });
}

void on_commit(LogicalDecodingContext* ctx, ReorderBufferTXN* txn, XLogRecPtr commit_lsn) {
  pg::cpp_callback([&] {
    State& s = state(ctx);
    bool begun = s.begun;
    s.begun = false;
    write_record(s, [&] {
      report_progress(ctx, s, !begun);
      if (begun && s.options.internal_apply) {
        // The row's lsn is the end of the commit record, its xid the
        // transaction's: what the applier needs to order and skip.
        OutputPluginPrepareWrite(ctx, true);
        appendStringInfoString(ctx->out, "{\"c\":");
        escape_json(ctx->out, JsonEncodeDateTime(nullptr, TimestampTzGetDatum(txn->xact_time.commit_time),
                                                 TIMESTAMPTZOID, nullptr));
        appendStringInfoChar(ctx->out, '}');
        OutputPluginWrite(ctx, true);
      } else if (begun) {
        write_xact(ctx, "commit", txn->xid, commit_lsn, txn->xact_time.commit_time, true);
      }
    });
  });
}

}  // namespace

}  // namespace ivm::capture

// _PG_output_plugin_init: makes ivm.so an output plugin (`-P ivm`).  Only
// assigns callbacks: no prepare or stream callbacks, so decoding hands over
// whole committed transactions and nothing of aborted ones.
void _PG_output_plugin_init(OutputPluginCallbacks* cb) {
  cb->startup_cb = ivm::capture::on_startup;
  cb->begin_cb = ivm::capture::on_begin;
  cb->change_cb = ivm::capture::on_change;
  cb->truncate_cb = ivm::capture::on_truncate;
  cb->commit_cb = ivm::capture::on_commit;
}

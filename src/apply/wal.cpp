// wal.cpp: WAL mode, the applier's side (see wal.hpp).
//
// Every apply (ivm.apply_deltas(), the background worker, create_view and
// set_mode catching up) runs catch_up first, under the appliers' lock and in
// the apply's snapshot S:
//
//  1. Decode, without consuming (pg_logical_slot_peek_changes with the
//     plugin's internal stream), every transaction committed up to L, the end
//     of WAL once S is taken (and flushed: decoding reads flushed WAL only,
//     and an asynchronous commit may be visible before it is flushed).
//  2. Take exactly the transactions S sees.  The delta rules join a batch of
//     changes with the tables as S shows them, so the batch must hold every
//     change S sees and no other.  Commit order in WAL is not quite the order
//     in which commits become visible: a transaction whose commit record is
//     written but that is not yet visible to S (a "straggler") is left for
//     the next apply, and so is everything S does not see.
//  3. Append the changes taken to the delta tables; the apply then consumes
//     them like trigger-captured ones.
//  4. Progress: the replication origin ivm_<database oid> records, with the
//     apply's commit (pg_replication_origin_xact_setup), the end P of the
//     longest prefix of the stream fully applied; transactions applied past
//     a straggler are listed in ivm.wal_state (same transaction).  A later
//     apply skips what ends at or before P and what that list names.  A crash
//     before the commit undoes the apply and its progress together; after
//     it, both survive.  The slot itself only moves up to the committed P
//     (at the start of the next apply), so it always keeps what is not yet
//     applied.
#include "apply/maintain.hpp"  // plan headers first: they refuse to follow postgres.h
#include "apply/wal.hpp"
#include "catalog/catalog.hpp"

extern "C" {
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "replication/origin.h"
#include "replication/slot.h"
}

#include <algorithm>
#include <optional>
#include <set>
#include <vector>

namespace ivm::wal {

using pg::Error;
using pg::pg_call;
using pg::quote_literal;

namespace {

// The origin this session set up for its transaction, and the origin
// position each subtransaction found before setting it (undone if it aborts).
bool owned = false;
struct Undo {
  SubTransactionId subid;
  XLogRecPtr lsn;
  TimestampTz time;
};
std::vector<Undo> undo;

void release_origin() {
  if (!owned) return;
  owned = false;
  undo.clear();
  replorigin_session_reset();
  replorigin_session_origin = InvalidRepOriginId;
  replorigin_session_origin_lsn = InvalidXLogRecPtr;
  replorigin_session_origin_timestamp = 0;
}

// on_xact: the origin is set up for one transaction only: its commit record
// carries the progress, and the session's later transactions must not.
void on_xact(XactEvent event, void*) {
  if (event == XACT_EVENT_PRE_PREPARE && owned)
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("cannot prepare a transaction that applied changes of views in mode wal"),
                    errhint("Apply them in a transaction of its own.")));
  if (pg::xact_ended(event)) release_origin();
}

void on_subxact(SubXactEvent event, SubTransactionId sub, SubTransactionId parent, void*) {
  if (!owned) return;
  if (event == SUBXACT_EVENT_ABORT_SUB) {
    // The rolled-back apply's progress goes with it.
    while (!undo.empty() && undo.back().subid >= sub) {
      replorigin_session_origin_lsn = undo.back().lsn;
      replorigin_session_origin_timestamp = undo.back().time;
      undo.pop_back();
    }
  } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
    for (auto& u : undo)
      if (u.subid == sub) u.subid = parent;
  }
}

std::uint64_t to_u64(const std::string& s) { return static_cast<std::uint64_t>(std::stoull(s)); }

std::string lsn_text(XLogRecPtr lsn) {
  char buf[32];
  snprintf(buf, sizeof buf, "%X/%X", static_cast<uint32>(lsn >> 32), static_cast<uint32>(lsn));
  return std::string(buf);
}

bool slot_exists(pg::Spi& spi, const std::string& slot) {
  spi.exec_once("SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = " + quote_literal(slot));
  return spi.rows() > 0;
}

// forget_progress: drops the database's origin and what ivm.wal_state says
// of the slot: where a slot's decoding got to.
void forget_progress(pg::Spi& spi, const std::string& slot) {
  pg_call([&] {
    if (replorigin_by_name(slot.c_str(), true) != InvalidRepOriginId)
      replorigin_drop_by_name(slot.c_str(), true, false);
  });
  catalog::AsCatalogOwner owner;  // ivm's catalog is written by ivm alone
  spi.exec_once("DELETE FROM ivm.wal_state WHERE slot = " + quote_literal(slot));
}

void check_wal_level() {
  if (wal_level < WAL_LEVEL_LOGICAL)
    throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "mode \"wal\" needs wal_level = logical",
                "This server runs with a wal_level that does not allow logical decoding.",
                "Set wal_level = logical in postgresql.conf and restart the server, or use mode 'deferred'.");
  if (max_replication_slots == 0)
    throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "mode \"wal\" needs a replication slot",
                "max_replication_slots is 0.",
                "Set max_replication_slots > 0 in postgresql.conf and restart the server.");
}

// Applied: a transaction applied past a straggler (not yet covered by P).
struct Applied {
  TransactionId xid;
  XLogRecPtr end;
};

}  // namespace

void init() {
  RegisterXactCallback(on_xact, nullptr);
  RegisterSubXactCallback(on_subxact, nullptr);
}

std::string slot_name() { return "ivm_" + std::to_string(MyDatabaseId); }

void prepare(pg::Spi& spi) {
  check_wal_level();
  std::string slot = slot_name();
  // The first view in mode wal starts from a new slot.  One that exists
  // already is stale: left by the last view in mode wal (no apply since it was
  // dropped) or by a dropped extension.  Its origin records a position from
  // before this view's tables were captured, so decoding from there would
  // apply again changes the new view is populated with.
  const std::string first = "SELECT NOT EXISTS (SELECT 1 FROM ivm.views WHERE mode = 'wal')";
  spi.exec_once(first);
  bool stale = false;
  if (spi.boolean(0, 1) && slot_exists(spi, slot)) {
    // Under the appliers' lock, and only if no one made a view in mode wal
    // of it meanwhile (a statement sees what committed before it started).
    // The slot goes first: it must be made anew before this transaction
    // writes (dropping the origin writes).
    spi.exec_once("SELECT pg_catalog.pg_advisory_xact_lock(" + std::to_string(apply::kApplyLockKey) + ")");
    spi.exec_once(first);
    stale = spi.boolean(0, 1);
    if (stale && slot_exists(spi, slot))
      spi.exec_once("SELECT pg_catalog.pg_drop_replication_slot(" + quote_literal(slot) + ")");
  }
  for (int attempt = 0;; ++attempt) {
    if (!slot_exists(spi, slot)) {
      if (pg_call([] { return TransactionIdIsValid(GetTopTransactionIdIfAny()); }))
        throw Error(ERRCODE_ACTIVE_SQL_TRANSACTION,
                    "cannot start capturing changes from WAL in a transaction that has already written",
                    "The first view in mode wal of a database creates the replication slot \"" + slot +
                        "\", which PostgreSQL allows only before a transaction writes.",
                    "Create the view, or change its mode, in a transaction of its own.");
      spi.exec_once("SELECT pg_catalog.pg_create_logical_replication_slot(" + quote_literal(slot) + ", 'ivm')");
    }
    // From here on no apply can find the database without views in mode wal
    // and drop the slot: the lock is held until this transaction ends.
    spi.exec_once("SELECT pg_catalog.pg_advisory_xact_lock(" + std::to_string(apply::kApplyLockKey) + ")");
    if (slot_exists(spi, slot)) break;
    if (attempt >= 2)
      throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "could not create replication slot \"" + slot + "\"");
  }
  if (stale) forget_progress(spi, slot);  // of the old slot
  pg_call([&] {
    if (replorigin_by_name(slot.c_str(), true) == InvalidRepOriginId) (void)replorigin_create(slot.c_str());
  });
}

void catch_up(pg::Spi& spi, const std::vector<std::uint32_t>& relations) {
  std::string slot = slot_name();
  spi.exec(
      "SELECT EXISTS (SELECT 1 FROM ivm.views WHERE mode = 'wal'), "
      "EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = " +
      quote_literal(slot) + ")");
  bool wal_views = spi.boolean(0, 1), have_slot = spi.boolean(0, 2);
  if (!have_slot) {
    if (!wal_views) return;
    throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "replication slot \"" + slot + "\" of the views in mode wal does not exist",
                "The changes committed since it was dropped cannot be applied.",
                "Drop the views in mode wal and create them again.");
  }
  RepOriginId origin = pg_call([&] { return replorigin_by_name(slot.c_str(), true); });
  if (!wal_views) {
    // The last view in mode wal is gone (drop_view caught up before): nothing
    // needs the slot, which would otherwise keep WAL forever.  The next view
    // in mode wal creates it anew.  Left to a role allowed to drop it.
    bool allowed = pg_call([] { return superuser() || has_rolreplication(GetUserId()); });
    if (owned || !allowed) return;
    spi.exec_once("SELECT pg_catalog.pg_drop_replication_slot(" + quote_literal(slot) + ")");
    forget_progress(spi, slot);
    return;
  }
  // Only an apply that consumes a WAL-captured delta table needs the WAL
  // before it (the others read delta tables that triggers or ivm fill).
  bool needed = false;
  for (std::uint32_t r : catalog::delta_closure(spi, relations)) {
    const catalog::DeltaTable* dt = catalog::delta_table(spi, r);
    needed = needed || (dt && dt->from_wal);
  }
  if (!needed) return;
  check_wal_level();
  pg::PinnedSearchPath pinned;
  if (origin == InvalidRepOriginId) origin = pg_call([&] { return replorigin_create(slot.c_str()); });
  if (!owned) {
    if (replorigin_session_origin != InvalidRepOriginId)
      throw Error(ERRCODE_OBJECT_IN_USE,
                  "cannot apply views in mode wal in a session that replays another replication origin", "",
                  "Call pg_replication_origin_session_reset() first.");
    pg_call([&] { replorigin_session_setup(origin); });
    replorigin_session_origin = origin;
    owned = true;
  }
  XLogRecPtr committed = pg_call([] { return replorigin_session_get_progress(false); });
  // A round earlier in this transaction got further than the committed progress.
  XLogRecPtr progress = std::max(committed, replorigin_session_origin_lsn);

  // Let the slot forget what is applied for good (committed progress only:
  // this transaction may still abort).
  if (committed != InvalidXLogRecPtr) {
    spi.exec_once("SELECT confirmed_flush_lsn < " + quote_literal(lsn_text(committed)) +
                  "::pg_lsn FROM pg_catalog.pg_replication_slots WHERE slot_name = " + quote_literal(slot));
    if (spi.rows() > 0 && spi.boolean(0, 1))
      spi.exec_once("SELECT pg_catalog.pg_replication_slot_advance(" + quote_literal(slot) + ", " +
                    quote_literal(lsn_text(committed)) + "::pg_lsn)");
  }

  // What S sees committed is in WAL before L (a commit is logged before it
  // becomes visible); flushed, so that decoding reads it.
  spi.exec_once("SELECT pg_catalog.clock_timestamp()::text");
  std::string caught_up_at = spi.text(0, 1);
  XLogRecPtr upto = pg_call([] {
    XLogRecPtr l = GetXLogInsertRecPtr();
    // At the start of a page the insert position points past the page
    // header, where nothing is written yet: flushing up to the page start
    // covers every record before it.
    XLogRecPtr flush = l;
    if (l % XLOG_BLCKSZ == SizeOfXLogShortPHD)
      flush = l - SizeOfXLogShortPHD;
    else if (l % XLOG_BLCKSZ == SizeOfXLogLongPHD && XLogSegmentOffset(l - SizeOfXLogLongPHD, wal_segment_size) == 0)
      flush = l - SizeOfXLogLongPHD;
    XLogFlush(flush);
    return l;
  });
  spi.exec_once("SELECT lsn, xid, data FROM pg_catalog.pg_logical_slot_peek_changes(" + quote_literal(slot) + ", " +
                quote_literal(lsn_text(upto)) + "::pg_lsn, NULL, 'internal', 'apply')");
  spi.capture("ivm_wal_changes");

  spi.exec_once("SELECT pg_catalog.array_to_string(ahead, ',') FROM ivm.wal_state WHERE slot = " + quote_literal(slot));
  std::vector<Applied> ahead;
  if (spi.rows() > 0 && !spi.is_null(0, 1)) {
    std::string list = spi.text(0, 1);
    std::size_t pos = 0;
    while (pos < list.size()) {
      std::size_t comma = list.find(',', pos);
      std::string item = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      std::size_t colon = item.find(':');
      if (colon != std::string::npos)
        ahead.push_back({static_cast<TransactionId>(to_u64(item.substr(0, colon))), to_u64(item.substr(colon + 1))});
      pos = comma == std::string::npos ? list.size() : comma + 1;
    }
  }
  auto applied_before = [&](TransactionId xid, XLogRecPtr end) {
    for (const auto& a : ahead)
      if (a.xid == xid && a.end == end) return true;
    return false;
  };

  // The transactions in commit order: which to take, how far the prefix goes.
  spi.exec_once(
      "SELECT (lsn - '0/0'::pg_catalog.pg_lsn)::text, xid::text, data::json->>'c' FROM ivm_wal_changes "
      "WHERE data LIKE '{\"c\":%' ORDER BY lsn");
  Snapshot snapshot = spi.snapshot();
  std::vector<TransactionId> take;
  std::vector<Applied> still_ahead;
  XLogRecPtr prefix = progress;
  bool broken = false;
  std::string last_commit_time;
  for (uint64 i = 0; i < spi.rows(); ++i) {
    XLogRecPtr end = to_u64(spi.text(i, 1));
    TransactionId xid = static_cast<TransactionId>(to_u64(spi.text(i, 2)));
    if (end <= progress) continue;  // applied and recorded before
    bool done = applied_before(xid, end);
    bool visible = !done && pg_call([&] { return !XidInMVCCSnapshot(xid, snapshot); });
    if (visible) {
      take.push_back(xid);
      last_commit_time = spi.text(i, 3);
    }
    if (!done && !visible) {
      broken = true;  // a straggler: the prefix ends before it
    } else if (broken) {
      still_ahead.push_back({xid, end});
    } else {
      prefix = end;
    }
  }
  // No straggler: every transaction that commits before L is accounted for.
  if (!broken) prefix = std::max(prefix, upto);

  if (!take.empty()) {
    std::string xids;
    for (TransactionId x : take) xids += (xids.empty() ? "" : ",") + std::to_string(x);
    std::string in_batch = "xid = ANY ('{" + xids + "}'::pg_catalog.xid[])";
    spi.exec_once(
        "SELECT DISTINCT substring(data from 6 for position(',' in data) - 6) FROM ivm_wal_changes "
        "WHERE data LIKE '{\"r\":%' AND " +
        in_batch);
    std::vector<std::uint32_t> relations;
    for (uint64 i = 0; i < spi.rows(); ++i) relations.push_back(static_cast<std::uint32_t>(to_u64(spi.text(i, 1))));
    for (std::uint32_t r : relations) {
      const catalog::DeltaTable* cached = catalog::delta_table(spi, r);
      if (!cached) continue;  // no view reads it any more
      const std::string delta = cached->name;
      spi.exec_once(
          "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid::oid "
          "FROM pg_catalog.pg_attribute a "
          "WHERE a.attrelid = " +
          quote_literal(delta) +
          "::pg_catalog.regclass AND a.attnum > 0 "
          "AND NOT a.attisdropped AND a.attname NOT IN ('__m', '__at') ORDER BY a.attnum");
      std::string cols, values;
      for (uint64 i = 0; i < spi.rows(); ++i) {
        std::string name = spi.text(i, 1);
        auto type = static_cast<Oid>(to_u64(spi.text(i, 3)));
        cols += pg::quote_ident(name) + ", ";
        // Every value travels as its text in a JSON string (decode.cpp
        // append_text_row).  json_populate_record reads such a string as a
        // JSON string value for a json or jsonb column, not as the document
        // it holds: those are cast from the text, as the rest used to be.
        bool json = pg_call([&] {
          Oid base = getBaseType(type);
          return base == JSONOID || base == JSONBOID;
        });
        values += json ? "(c.j->'d'->>" + quote_literal(name) + ")::" + spi.text(i, 2) + ", "
                       : "v." + pg::quote_ident(name) + ", ";
      }
      // One statement per relation: each change's row parsed once into the
      // delta table's row type (json_populate_record runs each type's input
      // function on the text), not once per column.
      spi.exec_once("INSERT INTO " + delta + " (" + cols + "__m, __at) SELECT " + values +
                    "(c.j->>'m')::int8, t.at FROM (SELECT xid, data::json AS j FROM ivm_wal_changes WHERE data LIKE " +
                    quote_literal("{\"r\":" + std::to_string(r) + ",%") + " AND " + in_batch +
                    ") c CROSS JOIN LATERAL pg_catalog.json_populate_record(NULL::" + delta +
                    ", c.j->'d') v JOIN (SELECT xid, (data::json->>'c')::timestamptz AS at FROM ivm_wal_changes "
                    "WHERE data LIKE '{\"c\":%' AND " +
                    in_batch + ") t USING (xid)");
    }
  }

  std::string ahead_list;
  for (const auto& a : still_ahead)
    ahead_list += (ahead_list.empty() ? "" : ",") + std::to_string(a.xid) + ":" + std::to_string(a.end);
  // Written every time: the commit that carries the origin's progress needs
  // a transaction id, and ivm.status reads how fresh the views are from here.
  catalog::AsCatalogOwner owner;  // ivm's catalog is written by ivm alone
  spi.exec_once("INSERT INTO ivm.wal_state AS w (slot, applied_lsn, caught_up_at, ahead) VALUES (" +
                quote_literal(slot) + ", " + quote_literal(lsn_text(prefix)) + ", " + quote_literal(caught_up_at) +
                ", " +
                (ahead_list.empty() ? std::string("NULL") : "string_to_array(" + quote_literal(ahead_list) + ", ',')") +
                ") ON CONFLICT (slot) DO UPDATE SET applied_lsn = EXCLUDED.applied_lsn, "
                "caught_up_at = EXCLUDED.caught_up_at, ahead = EXCLUDED.ahead");
  if (prefix > progress) {
    TimestampTz at = last_commit_time.empty() ? pg_call([] { return GetCurrentTimestamp(); }) : pg_call([&] {
      return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(last_commit_time.c_str()),
                                                     ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
    });
    SubTransactionId sub = pg_call([] { return GetCurrentSubTransactionId(); });
    undo.push_back({sub, replorigin_session_origin_lsn, replorigin_session_origin_timestamp});
    replorigin_session_origin_lsn = prefix;
    replorigin_session_origin_timestamp = at;
  }
}

}  // namespace ivm::wal

// wal.hpp: WAL mode, the applier's side (the decoding side is the output
// plugin's internal stream, capture/decode.cpp).
//
// A base table that some view in mode 'wal' reads is WAL-captured: no trigger
// records its inserts, updates and deletes; they are decoded from the
// database's slot ivm_<database oid> and turned into rows of the table's delta
// table at the start of every apply (catch_up), in the apply's own snapshot and
// transaction.  Progress is the replication origin of the same name, advanced
// by the apply's commit: a crash loses or repeats nothing.
#pragma once
#include "pg/spi.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace ivm::wal {

// init: transaction callbacks (a session's origin lives as long as its
// transaction).  Called from _PG_init.
void init();

// slot_name: the slot and replication origin of this database.
std::string slot_name();

// prepare: before a view enters mode 'wal' (create_view, set_mode): checks
// wal_level and creates the slot and origin if missing (anew, for the first
// view in mode wal: one left from earlier is stale), which PostgreSQL
// allows only before the transaction writes.  Takes the appliers' lock, so
// that no apply drops the slot before the new view commits.
void prepare(pg::Spi& spi);

// catch_up: before an apply of `relations` consumes a WAL-captured delta
// table, decodes what committed since the last apply and appends the changes
// of WAL-captured tables that the apply's snapshot sees to their delta tables;
// records the progress with the transaction.  Runs inside apply_relations,
// under the appliers' lock and in its snapshot.  Drops the slot and origin
// once no view in mode 'wal' is left.
void catch_up(pg::Spi& spi, const std::vector<std::uint32_t>& relations);

}  // namespace ivm::wal

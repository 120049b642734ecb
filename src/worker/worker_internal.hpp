/*
 * worker_internal.hpp: what the files of worker/ share: the worker's
 * metadata of a captured table (table_meta.cpp), one batch (batch.cpp),
 * the worker's loop (worker.cpp) and the launcher's (launcher.cpp).
 */
#pragma once

#include "core/event.hpp"
#include "shmem/shmem_internal.hpp"

extern "C" {
#include "postgres.h"
#include "executor/spi.h"
}

#include <string>
#include <unordered_map>
#include <vector>

namespace ectosync {

/* How long one read of a table's changed rows may take (its owner's casts
 * included) before it fails alone: ReadTimeout in batch.cpp. */
constexpr int kReadTimeoutMs = 5000;

/* ---- table_meta.cpp ---- */

struct KeyCol {
  int16 attnum;
  std::string name, type; /* type: format_type_be(), for casts */
  KeyKind kind;           /* of its base type: how the cache keys its values */
};

struct JoinEnd {
  Oid target;                    /* the referenced table */
  std::vector<int16> fk_attnums; /* in the target's primary-key order */
};

struct TableMeta {
  bool exists = false;
  Oid owner = InvalidOid; /* the worker reads the table as its owner */
  std::string qualified;  /* quoted schema.table */
  std::string rows;       /* what a query reads its rows from: ONLY qualified, unless partitioned */
  std::string display;    /* schema.table, for payloads */
  std::vector<KeyCol> pk;
  std::vector<JoinEnd> join_ends; /* empty unless it is a join table */
  SPIPlanPtr load_plan = nullptr; /* saved: the query of load_table() */
};

/* The kinds of a table's key columns, for encode_key(). */
std::vector<KeyKind> key_kinds(const TableMeta &meta);

extern std::unordered_map<Oid, TableMeta> table_meta;
/* Relcache invalidation: a table's keys, name or columns may have changed. */
void forget_table_meta(Datum, Oid relid);
/* Forgets the metadata (and plans) of tables invalidated since the last batch. */
void forget_invalidated_meta();
const TableMeta &meta_for(Oid relid);

/* ---- batch.cpp ---- */

struct BatchResult {
  uint64 rows = 0, queries = 0, notifications = 0, not_loaded = 0;
};

BatchResult run_batch(DbSlot *slot, const std::vector<QueuedEvent> &batch, bool tables_alone);
/* At the worker's start: the timeout that ends a read past its own, and a
 * read that ended the worker before this one (batch.cpp's ReadTimeout). */
void register_read_overrun();
void note_ended_read(DbSlot *slot);
void notify(Oid relid, uint64 seq, Op op);
uint64 notify_held(const std::vector<Event> &events);
/* The second half of notify_held(): wakes the holders interest_match() found. */
uint64 wake_held(const std::vector<InterestHit> &hits);

/* ---- worker.cpp ---- */

void wait_for_latch(long timeout_ms);
uint64 wakeups();

/* ---- launcher.cpp ---- */

void launcher_loop();

}  // namespace ectosync

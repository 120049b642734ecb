/*
 * watch_internal.hpp: what the files of capture/ that keep the watches
 * share (watch.cpp, watch_needs.cpp, triggers.cpp): a watch's needs of each
 * table, the capture triggers, and the role their catalog work runs as.
 */
#pragma once

#include "pg/sql_context.hpp"
#include "value/catalog_internal.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/pg_authid.h"
#include "storage/lockdefs.h"
#include "utils/array.h"
#include "utils/jsonb.h"
}

#include <algorithm>
#include <map>
#include <set>

namespace ectosync {

/* One end of a join table: its foreign key columns and what they reference. */
struct JoinTarget {
  uint32_t relid = 0;
  std::vector<int16_t> fk_attnums, target_attnums;
  std::vector<std::string> target_columns;
  bool operator==(const JoinTarget &o) const {
    return relid == o.relid && fk_attnums == o.fk_attnums && target_attnums == o.target_attnums;
  }
};

struct TableNeed {
  uint32_t relid = 0;
  std::vector<int16_t> pk;
  std::set<int16_t> tracked; /* non-pk columns to capture */
  bool is_join = false;
  std::vector<JoinTarget> join_targets;
};

using Needs = std::map<uint32_t, TableNeed>;

template <typename Container>
std::string int_array(const Container &values) {
  std::string out = "[";
  bool first = true;
  for (auto v : values) {
    out += (first ? "" : ", ") + std::to_string(v);
    first = false;
  }
  return out + "]";
}

/* The same numbers as an int2[] literal: {1,2}. */
template <typename Container>
std::string pg_int_array(const Container &values) {
  std::string json = int_array(values);
  return "{" + json.substr(1, json.size() - 2) + "}";
}

/*
 * The extension's own catalog work (its tables, every watch's triggers)
 * runs as the bootstrap superuser, after the caller's rights were checked,
 * in a security-restricted operation and with the pinned settings of the
 * caller's SpiScope (sql_context.hpp): the caller needs no privileges on
 * ectosync's tables, and nothing the caller defined can run with those
 * rights.
 */
class AsSuperuser : public AsRole {
 public:
  AsSuperuser() : AsRole(BOOTSTRAP_SUPERUSERID) {}
};

/*
 * Each captured table has two triggers calling ectosync.capture()
 * (capture.cpp): the row trigger, whose arguments name the columns to
 * capture, and a statement trigger for TRUNCATE (a RELOAD marker).
 */
const char *const kTrigger = "ectosync_capture";
const char *const kTruncateTrigger = "ectosync_truncate";

/* A capture trigger as the catalog has it. */
struct TriggerState {
  bool exists = false;
  char enabled = 'D'; /* pg_trigger.tgenabled: 'A' fires always, 'D' never */
  std::vector<std::string> args;
};

/* The non-null oids of an oid[] argument (watch.cpp). */
std::set<uint32_t> oid_set(ArrayType *array);

/* watch_needs.cpp */
/* What plan needs captured of each table: what a value of it cannot be
 * right without (its keys, the columns of its associations, its join
 * tables' ends), and when precise (a watch's needs) also the columns whose
 * old values make patching and waking more precise. */
Needs needs_of(const Plan &plan, bool precise = true);
void merge(Needs &a, const Needs &b);
std::string join_targets_text(const std::vector<JoinTarget> &targets);
std::string needs_text(const Needs &needs);
Needs parse_needs(const std::string &text);

/* captured.cpp */
/* What a table's capture captures, by column names (as its trigger names them). */
struct CapturedColumns {
  std::vector<std::string> key;
  std::set<std::string> others;
  bool uncommitted = false; /* this transaction made or changed it */
};
/* What the capture triggers capture now, of every watched table; inside an SpiScope. */
std::map<uint32_t, CapturedColumns> captured_now();
/* The tables captured before whose capture (after) lacks a column it had. */
std::vector<uint32_t> capture_lost(const std::map<uint32_t, CapturedColumns> &before,
                                   const Needs &after);

/* triggers.cpp */
/* level: WARNING, or LOG_SERVER_ONLY for what the caller may not see */
void warn(const std::string &message, const std::string &detail, int level = WARNING);
std::string quoted_list(const std::vector<std::string> &args);
std::string table_name(uint32_t relid);
std::string sql_table_name(uint32_t relid);
void check_owner(const std::vector<uint32_t> &relids);
void refuse_temporary(const std::vector<uint32_t> &relids);
TriggerState trigger_state(uint32_t relid, const char *name);
/* Whether relid's key is no longer the one its capture trigger names (a
 * primary key, or the unique index that stands for it, added or dropped).
 * Inside an SpiScope. */
bool key_changed(uint32_t relid);
std::vector<std::string> trigger_args_of_hex(const std::string &hex);
/* Takes relid's lock in mode, waiting at most 10 s: false when another
 * transaction held it that long (triggers.cpp). */
bool lock_bounded(uint32_t relid, LOCKMODE mode);
/* The same, or 55P03: "could not lock <what>", holder's sentence as the
 * detail. */
void lock_or_fail(uint32_t relid, LOCKMODE mode, const std::string &what,
                  const std::string &holder);
/* Drops the trigger called name (a row trigger: row) from table relid, if
 * it is there, with a bounded wait for the lock. */
void drop_trigger(uint32_t relid, const char *name, bool row);
/* Takes relid's lock for a change of its triggers (and its partitions',
 * for a row trigger), waiting a bounded time: a table that its owner
 * keeps locked fails the statement (55P03) rather than hold every watch()
 * of every role (triggers.cpp). */
void lock_for_triggers(uint32_t relid, LOCKMODE mode, bool row);
/* The partitions of relid at any depth, of every kind (none for a table
 * that is not partitioned), found without locking them. */
std::vector<uint32_t> partition_tree(uint32_t relid);
/* The same, tables and partitioned tables only (those that take TRUNCATE
 * triggers). */
std::vector<uint32_t> partitions_of(uint32_t relid);
void enable_always(uint32_t relid, const char *trigger, bool row);
bool relation_exists(uint32_t relid);
std::map<uint32_t, std::string> stored_rows();
void install_partition_triggers(uint32_t relid);
void install(const TableNeed &n, const std::map<uint32_t, std::string> &stored);
void uninstall(uint32_t relid);

/* policy_sources.cpp */
/* The tables whose rows decide, through relid's policies, which of its rows a role sees. */
struct PolicySources {
  std::set<uint32_t> tables;       /* followed: each gets the policy triggers */
  std::vector<std::string> hidden; /* not followed, each with why */
  /* the views and functions (pg_class, pg_proc oids) met on the way: a
   * redefinition of one may change the sources */
  std::set<uint32_t> views, functions;
};
PolicySources policy_sources(uint32_t relid);
/* A WARNING naming what relid's policies read that cannot be followed. */
void warn_hidden_policy_sources(uint32_t relid);
/* Puts the policy triggers on the sources of the watched tables, and only there. */
void install_policy_triggers(const std::vector<uint32_t> &watched);
/* Whether install_policy_triggers(watched) would change nothing. */
bool policy_triggers_current(const std::vector<uint32_t> &watched);
/* Whether a policy trigger names a table of schema (by its name). */
bool policy_triggers_name_schema(const char *schema);
/* The watched tables whose policies read source, as its trigger names them. */
std::set<uint32_t> policy_dependents(uint32_t source);

}  // namespace ectosync

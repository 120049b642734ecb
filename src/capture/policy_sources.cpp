/*
 * policy_sources.cpp: the tables that row level security policies read,
 * and the triggers that turn their changes into RELOAD markers.
 *
 * A policy such as
 *   USING (project_id IN (SELECT project_id FROM members WHERE login = current_user))
 * decides which rows of docs a role sees from the rows of members.  Events
 * of docs say nothing when members changes, so a value held under that
 * policy would keep rows its role may no longer read, or miss rows it now
 * may.  Such a table is a *policy source* of docs: watch() puts a row
 * trigger (ectosync_policy; cloned to partitions) and a TRUNCATE trigger
 * (ectosync_policy_truncate) on it, calling capture_policy_source() with
 * the names of the watched tables whose policies read it.  Each change
 * queues, at commit, a RELOAD marker for each of them with why
 * kReloadPolicy: it reloads only the values that row level security
 * applies to (sync.cpp's reload_concerns()); the others, and shared values
 * (never under row level security), are left alone.
 *
 * The sources of a watched table are found in the USING expressions of its
 * SELECT and ALL policies: tables read by their subqueries (the table
 * itself too: a policy may read other rows of its own table), through
 * views, through functions with an SQL-standard body (BEGIN ATOMIC), and
 * the sources of those tables' own policies in turn.  What cannot be
 * followed is *hidden* and named in a WARNING by watch() and by CREATE or
 * ALTER POLICY: a function whose body is text (its tables are known only
 * when it runs), a materialized view, a foreign table, a system catalog
 * other than the roles' (pg_authid and pg_auth_members, whose changes
 * role_change.cpp follows; not pg_db_role_setting, the roles' settings),
 * and a table whose owner's rights the watched table's owner does not
 * have (ecto_sync puts no trigger on another role's table).
 *
 * Trigger arguments are schema-qualified names, resolved when the trigger
 * fires, so that a restored dump keeps working; a name that no longer
 * resolves queues a marker for every table (relid 0).
 */
#include "capture/watch.hpp"
#include "capture/watch_internal.hpp"
#include "capture/xact_buffer.hpp"
#include "pg/catalog_scan.hpp"

#include "core/event.hpp"
#include "shmem/shmem.hpp"
#include "shmem/shmem_internal.hpp"
#include "settings.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/objectaccess.h"
#include "catalog/namespace.h"
#include "catalog/pg_auth_members.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_db_role_setting.h"
#include "commands/extension.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pg_list.h"
#include "rewrite/rewriteSupport.h"
#include "rewrite/rowsecurity.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/varlena.h"
}

namespace ectosync {

namespace {

const char *const kPolicyTrigger = "ectosync_policy";
const char *const kPolicyTruncateTrigger = "ectosync_policy_truncate";

/*
 * The table that a trigger argument names ("schema"."name"), InvalidOid if
 * none: without the privilege checks of RangeVarGetRelid(), which would
 * make a writer of the source fail for lack of USAGE on the watched
 * table's schema.  Plain C: no C++ object.
 */
Oid qualified_relid(const char *name) {
  List *names = stringToQualifiedNameList(name);
  if (list_length(names) != 2) return InvalidOid;
  Oid nsp = get_namespace_oid(strVal(linitial(names)), true);
  return OidIsValid(nsp) ? get_relname_relid(strVal(lsecond(names)), nsp) : InvalidOid;
}

/* ==== finding the sources ==== */

/* What one walk over an expression or query met: relation and function oids. */
struct Met {
  List *relations;
  List *functions;
};

bool note_function(Oid funcid, void *context) {
  Met *met = static_cast<Met *>(context);
  met->functions = list_append_unique_oid(met->functions, funcid);
  return false;
}

/* A raw tree walker (C: it runs inside pg_call and allocates only Lists). */
bool walk_tree(Node *node, void *context) {
  if (node == nullptr) return false;
  Met *met = static_cast<Met *>(context);
  /* (the walkers take an unprototyped pointer: cast through void (*)()) */
  auto walker = reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(walk_tree));
  if (IsA(node, Query))
    return query_tree_walker(castNode(Query, node), walker, context, QTW_EXAMINE_RTES_BEFORE);
  if (IsA(node, RangeTblEntry)) {
    RangeTblEntry *rte = castNode(RangeTblEntry, node);
    if (rte->rtekind == RTE_RELATION)
      met->relations = list_append_unique_oid(met->relations, rte->relid);
    return false;
  }
  check_functions_in_node(node, note_function, context);
  return expression_tree_walker(node, walker, context);
}

/* The relations and functions a copy of node reads or calls. */
Met walk_copy(const Node *node) {
  Met met{NIL, NIL};
  Node *copy = static_cast<Node *>(copyObjectImpl(node));
  walk_tree(copy, &met);
  return met;
}

/*
 * What relid's SELECT and ALL policies read, from pg_policy, when row
 * level security is enabled on it.  From the catalogs, not the relcache:
 * opening the table would wait for its lock, and a role that holds one on
 * its own table (idle in a transaction) would stop every refresh of
 * watches, each other role's watch() and DDL of watched tables.  Plain C.
 */
Met policies_read(Oid relid) {
  Met all{NIL, NIL};
  HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
  if (!HeapTupleIsValid(tuple)) return all;
  bool secured = ((Form_pg_class)GETSTRUCT(tuple))->relrowsecurity;
  ReleaseSysCache(tuple);
  if (!secured) return all;
  scan_catalog(PolicyRelationId, PolicyPolrelidPolnameIndexId, Anum_pg_policy_polrelid, relid,
               [&](HeapTuple policy, TupleDesc desc) {
                 char cmd = ((Form_pg_policy)GETSTRUCT(policy))->polcmd;
                 bool isnull = false;
                 Datum qual = heap_getattr(policy, Anum_pg_policy_polqual, desc, &isnull);
                 if ((cmd != ACL_SELECT_CHR && cmd != '*') || isnull) return;
                 Met one{NIL, NIL};
                 walk_tree(static_cast<Node *>(stringToNode(TextDatumGetCString(qual))), &one);
                 all.relations = list_concat_unique_oid(all.relations, one.relations);
                 all.functions = list_concat_unique_oid(all.functions, one.functions);
               });
  return all;
}

/* What view relid's query reads, from pg_rewrite (not by opening the view,
 * which would wait for its lock: policies_read()).  Plain C. */
Met view_reads(Oid relid) {
  Met met{NIL, NIL};
  HeapTuple tuple =
      SearchSysCache2(RULERELNAME, ObjectIdGetDatum(relid), CStringGetDatum(ViewSelectRuleName));
  if (!HeapTupleIsValid(tuple)) return met;
  bool isnull = false;
  Datum action = SysCacheGetAttr(RULERELNAME, tuple, Anum_pg_rewrite_ev_action, &isnull);
  if (!isnull) walk_tree(static_cast<Node *>(stringToNode(TextDatumGetCString(action))), &met);
  ReleaseSysCache(tuple);
  return met;
}

std::vector<uint32_t> oids(List *list) {
  std::vector<uint32_t> out;
  ListCell *cell;
  foreach (cell, list) out.push_back(lfirst_oid(cell));
  return out;
}

/* Finds the sources of one watched table (see the header comment). */
class SourceFinder {
 public:
  explicit SourceFinder(uint32_t watched) : watched_(watched) {
    owner_ = pg_call([&] { return table_owner(watched); });
  }

  PolicySources find() {
    read_policies(watched_);
    /* (hidden by one path, followed through another) */
    for (const auto &[relid, text] : hidden_tables_)
      if (!out_.tables.count(relid)) out_.hidden.push_back(text);
    if (bounded_)
      out_.hidden.push_back("what lies past " + std::to_string(kMaxDepth) +
                            " levels of policies, views, functions and inheritance, or past " +
                            std::to_string(kMaxVisits) + " tables, views and functions");
    return std::move(out_);
  }

 private:
  /*
   * Bounds of one walk.  A role's own tables, views, functions and
   * policies can nest or fan out without end (a chain of inheritance
   * children recursed here until the stack overflowed), and the walk runs
   * in other roles' statements (watch(), their DDL): what lies past them
   * is hidden, and named in the WARNING.
   */
  static constexpr int kMaxDepth = 64;
  static constexpr size_t kMaxVisits = 500;
  int depth_ = 0;
  bool bounded_ = false;

  /* One level deeper for the life of the object; false past the bounds. */
  struct Level {
    SourceFinder &finder;
    explicit Level(SourceFinder &f) : finder(f) { finder.depth_++; }
    ~Level() { finder.depth_--; }
    bool within() {
      size_t visits = finder.seen_relations_.size() + finder.seen_functions_.size();
      if (finder.depth_ <= kMaxDepth && visits <= kMaxVisits) return true;
      finder.bounded_ = true;
      return false;
    }
  };

  /* Who named the relations and functions met: a table's owner (its
   * policies), a view's, or a function's. */
  struct Namer {
    Oid owner;
    std::string what; /* for messages: "table docs", "view v", "function f(integer)" */
  };

  /* The USING expressions of relid's SELECT and ALL policies, when row
   * level security is enabled on it (when the relcache keeps them). */
  void read_policies(uint32_t relid) {
    Level level(*this);
    if (!level.within() || !policy_tables_.insert(relid).second) return;
    follow(pg_call([&] { return policies_read(relid); }),
           Namer{pg_call([&] { return table_owner(relid); }), "table " + table_name(relid)});
  }

  void follow(const Met &met, const Namer &namer) {
    for (uint32_t relid : oids(met.relations)) relation(relid, namer);
    for (uint32_t funcid : oids(met.functions)) function(funcid);
  }

  void relation(uint32_t relid, const Namer &namer) {
    Level level(*this);
    /* (each namer's owner is asked: one's refusal does not hide another's) */
    if (!level.within() || !seen_relations_.insert({relid, namer.owner}).second) return;
    char kind = pg_call([&] { return get_rel_relkind(relid); });
    if (kind == RELKIND_VIEW) {
      out_.views.insert(relid);
      follow(pg_call([&] { return view_reads(relid); }),
             Namer{pg_call([&] { return table_owner(relid); }), "view " + table_name(relid)});
      return;
    }
    /* (the roles' catalogs: role_change.cpp follows their changes) */
    if (relid == AuthIdRelationId || relid == AuthMemRelationId) return;
    if (relid == DbRoleSettingRelationId) {
      hidden_tables_.emplace(relid,
                             "pg_db_role_setting (pg_roles.rolconfig): role settings are "
                             "not followed, since any role may change its own");
      return;
    }
    std::string why = hidden_table_reason(relid, kind, namer);
    if (!why.empty()) {
      hidden_tables_.emplace(relid, "table " + table_name(relid) + ": " + why);
      return;
    }
    out_.tables.insert(relid);
    read_policies(relid); /* its rows are read under its own policies too */
    /* Its inheritance children's rows are read with its own (even FROM
     * ONLY: one trigger too many costs a reload too many).  A partitioned
     * table's partitions take clones of its triggers instead. */
    if (kind == RELKIND_RELATION)
      for (uint32_t child : oids(pg_call([&] { return find_inheritance_children(relid, NoLock); })))
        relation(child, namer);
  }

  /*
   * Why changes of relid (a relation of kind) cannot be followed, or "".
   * The trigger goes only on a table whose owner's rights both the watched
   * table's owner and the namer's owner have: else a role could hang it on
   * any table by naming that table in a view or function of its own.
   */
  std::string hidden_table_reason(uint32_t relid, char kind, const Namer &namer) {
    if (relid < FirstNormalObjectId) return "a system catalog takes no triggers";
    if (kind == RELKIND_MATVIEW) return "a materialized view changes without row changes";
    if (kind == RELKIND_FOREIGN_TABLE) return "a foreign table changes elsewhere";
    if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE) return "not a table";
    if (pg_call([&] { return get_rel_persistence(relid); }) == RELPERSISTENCE_TEMP)
      return "a temporary table";
    for (const Namer &by : {Namer{owner_, "table " + table_name(watched_)}, namer})
      if (!pg_call([&] { return pg_class_ownercheck(relid, by.owner); }))
        return "the owner of " + by.what +
               " lacks its owner's rights, and ecto_sync puts no trigger on another role's table";
    return "";
  }

  /*
   * A built-in function reads no table, but has_table_privilege() and its
   * kin read privileges: a GRANT or REVOKE changes what the policy shows
   * with no row changed, and is not followed (it is not a change of roles,
   * which role_change.cpp follows: GRANTs are every migration's, and
   * would reload every value under policies in every database).
   */
  void builtin_function(uint32_t funcid) {
    if (!seen_builtins_.insert(funcid).second) return;
    std::string name = pg_call([&] {
      char *n = get_func_name(funcid);
      return std::string(n ? n : "");
    });
    if (name.rfind("has_", 0) == 0 && name.size() > 14 &&
        name.compare(name.size() - 10, 10, "_privilege") == 0)
      out_.hidden.push_back("function " + name +
                            "(): it reads privileges, and GRANT and REVOKE are not followed");
  }

  /* A function's SQL-standard body is a parsed tree with its tables. */
  void function(uint32_t funcid) {
    if (funcid < FirstNormalObjectId) return builtin_function(funcid);
    Level level(*this);
    if (!level.within() || !seen_functions_.insert(funcid).second) return;
    out_.functions.insert(funcid);
    bool hidden = true;
    Oid owner = InvalidOid;
    Met met = pg_call([&] {
      Met found{NIL, NIL};
      HeapTuple tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
      if (!HeapTupleIsValid(tuple)) return found;
      owner = ((Form_pg_proc)GETSTRUCT(tuple))->proowner;
      bool isnull = true;
      Datum body = SysCacheGetAttr(PROCOID, tuple, Anum_pg_proc_prosqlbody, &isnull);
      if (!isnull) {
        found = walk_copy(static_cast<Node *>(stringToNode(TextDatumGetCString(body))));
        hidden = false;
      }
      ReleaseSysCache(tuple);
      return found;
    });
    std::string name = pg_call([&] { return std::string(format_procedure(funcid)); });
    if (hidden) {
      out_.hidden.push_back("function " + name +
                            ": its body is not BEGIN ATOMIC, so the tables it reads are known "
                            "only when it runs");
      return;
    }
    follow(met, Namer{owner, "function " + name});
  }

  uint32_t watched_;
  Oid owner_ = InvalidOid;
  std::set<uint32_t> policy_tables_, seen_functions_;
  std::set<uint32_t> seen_builtins_; /* (not visits: kMaxVisits counts what it walks) */
  std::set<std::pair<uint32_t, Oid>> seen_relations_;
  std::map<uint32_t, std::string> hidden_tables_; /* the first reason each */
  PolicySources out_;
};

/* ==== the triggers ==== */

/* Trigger arguments: the dependents' schema-qualified names, sorted. */
std::vector<std::string> trigger_args(const std::set<uint32_t> &dependents) {
  std::vector<std::string> args;
  for (uint32_t relid : dependents) args.push_back(sql_table_name(relid));
  std::sort(args.begin(), args.end());
  return args;
}

struct WantedTrigger {
  std::vector<std::string> args;
  bool row = false; /* the row trigger, else the TRUNCATE one */
};

/* (relid, trigger name) of every policy trigger that should exist. */
using TriggerKey = std::pair<uint32_t, std::string>;

std::map<TriggerKey, WantedTrigger> wanted_triggers(
    const std::map<uint32_t, std::set<uint32_t>> &dependents) {
  std::map<TriggerKey, WantedTrigger> out;
  for (const auto &[source, tables] : dependents) {
    std::vector<std::string> args = trigger_args(tables);
    out[{source, kPolicyTrigger}] = {args, true};
    out[{source, kPolicyTruncateTrigger}] = {args, false};
    /* (a TRUNCATE of a partition fires only the partition's own) */
    for (uint32_t part : partition_tree(source))
      if (pg_call([&] { return get_rel_relkind(part); }) == RELKIND_RELATION)
        out[{part, kPolicyTruncateTrigger}] = {args, false};
  }
  return out;
}

/*
 * A source that is a partition of another source: its rows fire the
 * clone of the ancestor's row trigger, which takes its name.  So the
 * ancestor's trigger names its dependents too (their values reload for
 * changes of the other partitions as well).
 */
void merge_into_ancestors(std::map<uint32_t, std::set<uint32_t>> &dependents) {
  std::vector<uint32_t> merged;
  for (auto &[source, tables] : dependents) {
    auto top = dependents.end(); /* the highest ancestor that is a source */
    for (const auto &row :
         spi_rows("SELECT relid::pg_catalog.oid FROM pg_catalog.pg_partition_ancestors($1)"
                  " WHERE relid OPERATOR(pg_catalog.<>) $1",
                  {{REGCLASSOID, std::to_string(source)}}, false)) {
      auto ancestor = dependents.find(static_cast<uint32_t>(std::stoul(*row[0])));
      if (ancestor != dependents.end()) top = ancestor;
    }
    if (top == dependents.end()) continue;
    top->second.insert(tables.begin(), tables.end());
    merged.push_back(source);
  }
  for (uint32_t source : merged) dependents.erase(source);
}

/* The policy triggers there are (clones on partitions aside). */
std::map<TriggerKey, TriggerState> existing_triggers() {
  std::map<TriggerKey, TriggerState> out;
  for (const auto &row : spi_rows(
           "SELECT tgrelid::pg_catalog.oid, tgname::pg_catalog.text, tgenabled::pg_catalog.text,"
           " pg_catalog.encode(tgargs, 'hex') FROM pg_catalog.pg_trigger"
           " WHERE tgname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])"
           " AND tgparentid OPERATOR(pg_catalog.=) 0 AND tgfoid OPERATOR(pg_catalog.=)"
           " 'ectosync.capture_policy_source'::pg_catalog.regproc",
           {{TEXTOID, "{" + std::string(kPolicyTrigger) + "," + kPolicyTruncateTrigger + "}"}},
           false)) {
    TriggerState &state = out[{static_cast<uint32_t>(std::stoul(*row[0])), *row[1]}];
    state.exists = true;
    state.enabled = row[2]->at(0);
    state.args = trigger_args_of_hex(*row[3]);
  }
  return out;
}

void create_trigger(uint32_t relid, const std::string &name, const WantedTrigger &want) {
  std::string table = sql_table_name(relid);
  if (trigger_state(relid, name.c_str()).exists) {
    /* (another function's, under our name: its table's owner made it;
     * the refresh of every watch must not fail for it) */
    warn("ecto_sync cannot put its trigger " + name + " on " + table,
         "A trigger of that name calls another function; changes of " + table +
             " are not followed for row level security.");
    return;
  }
  lock_for_triggers(relid, ShareRowExclusiveLock, want.row);
  spi_exec("CREATE TRIGGER " + name +
           (want.row ? " AFTER INSERT OR UPDATE OR DELETE ON " + table + " FOR EACH ROW"
                     : " AFTER TRUNCATE ON " + table + " FOR EACH STATEMENT") +
           " EXECUTE FUNCTION ectosync.capture_policy_source(" + quoted_list(want.args) + ")");
  enable_always(relid, name.c_str(), want.row);
}

}  // namespace

PolicySources policy_sources(uint32_t relid) {
  return SourceFinder(relid).find();
}

void warn_hidden_policy_sources(uint32_t relid) {
  PolicySources sources = policy_sources(relid);
  if (sources.hidden.empty()) return;
  std::string detail;
  for (const std::string &h : sources.hidden) detail += (detail.empty() ? "" : "; ") + h;
  std::string table = table_name(relid);
  pg_call([&] {
    ereport(WARNING,
            (errmsg("ecto_sync cannot follow everything that row level security of %s reads",
                    table.c_str()),
             errdetail("Not followed: %s.", detail.c_str()),
             errhint("A value held under these policies may keep rows its role can no longer "
                     "read until it is loaded again; read tables directly in the policy, or "
                     "through a function with a BEGIN ATOMIC body.")));
  });
}

namespace {

/* The policy triggers that the watched tables want, and those there are. */
struct TriggerPlan {
  std::map<uint32_t, std::set<uint32_t>> dependents; /* source -> watched tables */
  std::map<TriggerKey, WantedTrigger> wanted;
  std::map<TriggerKey, TriggerState> existing;
};

TriggerPlan plan_policy_triggers(const std::vector<uint32_t> &watched) {
  TriggerPlan plan;
  for (uint32_t relid : watched)
    for (uint32_t source : policy_sources(relid).tables) plan.dependents[source].insert(relid);
  merge_into_ancestors(plan.dependents);
  plan.wanted = wanted_triggers(plan.dependents);
  plan.existing = existing_triggers();
  return plan;
}

/* Clones of the policy triggers on partitions that an ALTER TABLE disabled. */
std::vector<std::pair<uint32_t, std::string>> clones_not_firing() {
  std::vector<std::pair<uint32_t, std::string>> out;
  for (const auto &row :
       spi_rows("SELECT tgrelid::pg_catalog.oid, tgname::pg_catalog.text FROM pg_catalog.pg_trigger"
                " WHERE tgparentid OPERATOR(pg_catalog.<>) 0 AND tgenabled OPERATOR(pg_catalog.<>)"
                " 'A' AND tgfoid OPERATOR(pg_catalog.=)"
                " 'ectosync.capture_policy_source'::pg_catalog.regproc",
                {}, false))
    out.emplace_back(static_cast<uint32_t>(std::stoul(*row[0])), *row[1]);
  return out;
}

/* Whether the policy functions of version 0.2.0 are there (not before ALTER EXTENSION UPDATE). */
bool policy_triggers_installed() {
  return spi_rows("SELECT pg_catalog.to_regprocedure('ectosync.capture_policy_source()')", {},
                  false)
      .at(0)[0]
      .has_value();
}

}  // namespace

bool policy_triggers_current(const std::vector<uint32_t> &watched) {
  if (!policy_triggers_installed()) return true;
  TriggerPlan plan = plan_policy_triggers(watched);
  for (const auto &[key, state] : plan.existing)
    if (!plan.wanted.count(key) || plan.wanted.at(key).args != state.args) return false;
  for (const auto &[key, want] : plan.wanted) {
    auto it = plan.existing.find(key);
    if (it == plan.existing.end() || it->second.enabled != 'A') return false;
  }
  return clones_not_firing().empty();
}

void install_policy_triggers(const std::vector<uint32_t> &watched) {
  if (!policy_triggers_installed()) return;
  TriggerPlan plan = plan_policy_triggers(watched);
  std::map<uint32_t, std::set<uint32_t>> &dependents = plan.dependents;
  const std::map<TriggerKey, WantedTrigger> &wanted = plan.wanted;
  const std::map<TriggerKey, TriggerState> &existing = plan.existing;
  for (const auto &[key, state] : existing)
    if (!wanted.count(key) || wanted.at(key).args != state.args)
      drop_trigger(key.first, key.second.c_str(), key.second == kPolicyTrigger);
  /* Changes of a source were not followed for a dependent that its row
   * trigger did not name, firing always, until now: the values under row
   * level security of such dependents reload.  CREATE TRIGGER and ALTER
   * TABLE waited for the source's writers; later ones fire the trigger. */
  std::set<uint32_t> reload;
  for (const auto &[key, want] : wanted) {
    auto it = existing.find(key);
    bool followed = it != existing.end() && it->second.enabled == 'A';
    if (want.row)
      for (uint32_t relid : dependents[key.first])
        if (!followed || std::find(it->second.args.begin(), it->second.args.end(),
                                   sql_table_name(relid)) == it->second.args.end())
          reload.insert(relid);
    if (it != existing.end() && it->second.args == want.args) {
      if (it->second.enabled != 'A') enable_always(key.first, key.second.c_str(), want.row);
      continue;
    }
    create_trigger(key.first, key.second, want);
  }
  /* (clones on partitions: ALTER TABLE of a partition can disable them) */
  for (const auto &[relid, name] : clones_not_firing()) {
    enable_always(relid, name.c_str(), true); /* (clones of row triggers) */
    for (uint32_t dependent : policy_dependents(relid)) reload.insert(dependent);
  }
  for (uint32_t relid : reload) pg_call([&] { restart_capture(relid, kReloadPolicy); });
}

bool policy_triggers_name_schema(const char *schema) {
  std::string prefix = std::string(pg_call([&] { return quote_identifier(schema); })) + ".";
  for (const auto &row :
       spi_rows("SELECT pg_catalog.encode(tgargs, 'hex') FROM pg_catalog.pg_trigger"
                " WHERE tgparentid OPERATOR(pg_catalog.=) 0 AND tgfoid OPERATOR(pg_catalog.=)"
                " pg_catalog.to_regprocedure('ectosync.capture_policy_source()')",
                {}, false))
    for (const std::string &name : trigger_args_of_hex(*row[0]))
      if (name.compare(0, prefix.size(), prefix) == 0) return true;
  return false;
}

std::set<uint32_t> policy_dependents(uint32_t source) {
  std::set<uint32_t> out;
  /* (by function, not by name: any role may name a trigger of its own so;
   * a partition's clones and TRUNCATE triggers name the same tables) */
  for (const auto &row :
       spi_rows("SELECT pg_catalog.encode(tgargs, 'hex') FROM pg_catalog.pg_trigger"
                " WHERE tgrelid OPERATOR(pg_catalog.=) $1 AND tgfoid OPERATOR(pg_catalog.=)"
                " pg_catalog.to_regprocedure('ectosync.capture_policy_source()')",
                {{OIDOID, std::to_string(source)}}, false))
    for (const std::string &name : trigger_args_of_hex(*row[0])) {
      Oid relid = pg_call([&] { return qualified_relid(name.c_str()); });
      if (OidIsValid(relid)) out.insert(relid);
    }
  return out;
}

/*
 * ecto_sync's policy trigger function in this database, if the extension
 * is here and the function is its own: a look-alike of that name in a
 * database without the extension is not (C: no C++ object).
 */
static Oid policy_trigger_function() {
  Oid extension = get_extension_oid("ecto_sync", true);
  if (!OidIsValid(extension)) return InvalidOid;
  Oid function =
      GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid, CStringGetDatum("capture_policy_source"),
                      PointerGetDatum(buildoidvector(nullptr, 0)),
                      ObjectIdGetDatum(get_namespace_oid("ectosync", true)));
  return OidIsValid(function) && getExtensionOfObject(ProcedureRelationId, function) == extension
             ? function
             : InvalidOid;
}

/*
 * The tables that trigger names, if it is a policy trigger (0: a name
 * that no longer resolves), read from its pg_trigger row before it goes.
 * C: it runs inside the drop, and owns no C++ object.
 */
static List *dependents_named_by(Oid trigger) {
  List *out = NIL;
  scan_catalog(TriggerRelationId, TriggerOidIndexId, Anum_pg_trigger_oid, trigger,
               [&](HeapTuple tuple, TupleDesc desc) {
                 Form_pg_trigger form = (Form_pg_trigger)GETSTRUCT(tuple);
                 bool isnull = true;
                 Datum args = heap_getattr(tuple, Anum_pg_trigger_tgargs, desc, &isnull);
                 /* (the name first: the function's lookup reads pg_extension) */
                 if (isnull ||
                     strncmp(NameStr(form->tgname), kPolicyTrigger, strlen(kPolicyTrigger)) != 0 ||
                     form->tgfoid != policy_trigger_function())
                   return;
                 const char *arg = VARDATA_ANY(DatumGetByteaPP(args));
                 for (int i = 0; i < form->tgnargs; arg += strlen(arg) + 1, i++)
                   out = lappend_oid(out, qualified_relid(arg));
               });
  return out;
}

static object_access_hook_type prev_object_access = nullptr;

/*
 * A policy trigger dropped with its table (DROP TABLE of a partition of a
 * source, DROP SCHEMA ... CASCADE, DROP OWNED): the table's rows went and
 * no trigger fired, so the values under the policies that read them
 * reload at commit (kReloadPolicy), as for a DETACH.  The object access
 * hook sees every drop, under the drop's lock, while the trigger's row is
 * still there.  Not for the refreshes' own drops, nor in a database whose
 * values none are (no slot).
 */
static void object_access(ObjectAccessType access, Oid class_id, Oid object_id, int sub_id,
                          void *arg) {
  if (prev_object_access) prev_object_access(access, class_id, object_id, sub_id, arg);
  if (access != OAT_DROP || class_id != TriggerRelationId || !current_slot() ||
      refreshing_watches())
    return;
  List *dependents = dependents_named_by(object_id);
  if (dependents == NIL) return;
  pg_entry([&] {
    ListCell *named;
    foreach (named, dependents) remember_reload(lfirst_oid(named), kReloadPolicy);
  });
}

void policy_sources_init() {
  prev_object_access = object_access_hook;
  object_access_hook = object_access;
}

}  // namespace ectosync

using namespace ectosync;

/*
 * ectosync.capture_policy_source(VARIADIC dependents) RETURNS trigger: a
 * row of a policy source changed, or the source was truncated.  Plain C
 * over the trigger's arguments: nothing here owns a C++ object.
 */
ECTOSYNC_FUNCTION(ectosync_capture_policy_source) {
  if (!CALLED_AS_TRIGGER(fcinfo) ||
      !TRIGGER_FIRED_AFTER(((TriggerData *)fcinfo->context)->tg_event))
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("ectosync.capture_policy_source() must be called as an AFTER trigger")));
  Trigger *trigger = ((TriggerData *)fcinfo->context)->tg_trigger;
  if (fired_before(trigger->tgoid)) return PointerGetDatum(nullptr);
  attach_database_slot();
  for (int i = 0; i < trigger->tgnargs; i++) {
    Oid relid = qualified_relid(trigger->tgargs[i]);
    /* (gone since the trigger was made: every table's values under row
     * level security reload) */
    remember_reload(OidIsValid(relid) ? relid : 0, kReloadPolicy);
  }
  note_fired(trigger->tgoid); /* (last: a failure above, caught, leaves it to the next row) */
  return PointerGetDatum(nullptr);
}

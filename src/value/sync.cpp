/*
 * sync.cpp: ectosync.sync(value jsonb, event text) RETURNS jsonb.
 *
 * A value made by load() (plan.hpp) is patched with the CURRENT state of the
 * row an event names (from the shared row cache, or read as the caller on a
 * miss or under row level security), so that applying events is idempotent
 * and robust to their order: after all events, the value equals a fresh
 * load() ("seq" aside).
 *
 * The value is read in place (jsonb_writer.hpp's View) and the result is
 * written with raw copies of everything the event cannot touch: subtrees
 * whose plan does not involve the event's table are never visited, runs of
 * untouched rows are copied as byte ranges, and lists are searched by
 * primary key (they are ordered by it) when the parent can be located from
 * the event's key values.
 *
 * The rules, for the changed row(s) of table T (old and new primary key):
 *  - wherever a row of T with that key sits, it gets the current columns
 *    (its association keys kept); it leaves a list when it no longer exists
 *    or no longer belongs there (has_many: its target columns no longer
 *    equal the parent's owner columns; root: the filter no longer matches),
 *    and enters, in primary-key order, the lists it now belongs to;
 *  - a row entering with associations of its own is read as load() reads
 *    it (load_rows_where by primary key, as the caller); without any it is
 *    the cached row;
 *  - when a row's owner columns changed, its belongs_to/has_one/has_many
 *    associations are read again (keyed load);
 *  - join rows of a many_to_many add or remove the target under the
 *    parents whose owner key the join row has (had);
 *  - a has_one/belongs_to whose row left, or that another row may now
 *    take, is read again (keyed load).
 *
 * An event brings the value up to it through every logged event after the
 * value's seq (sync_value(); under row level security, up to what the
 * worker loaded); events of tables that the value does not hold leave its
 * rows alone.  RELOAD markers of a held table, events that left the event
 * log, values of an earlier server run or another database, values whose
 * assocs lead to other tables now, values read where their tables were
 * written ("uncommitted"), and under row level security values whose seal
 * does not hold (seal.hpp) raise SQLSTATE ZE001: the client must load()
 * again.  A value read for reading only ("unwatched") is refused (55000).
 */
#include "value/catalog.hpp"
#include "core/event.hpp"
#include "value/jsonb_writer.hpp"
#include "value/keys.hpp"
#include "pg/pg_boundary.hpp"
#include "core/plan.hpp"
#include "shmem/shmem.hpp"
#include "value/patcher.hpp"
#include "value/seal.hpp"
#include "value/sync.hpp"

extern "C" {
#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "catalog/namespace.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/acl.h"
#include "utils/inval.h"
#include "utils/rls.h"
}

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ectosync {
namespace {

/* The reload-required error: the client must call load() again. */
[[noreturn]] void reload_required(const std::string &detail) {
  throw Error(ERRCODE_ECTOSYNC_RELOAD, "ecto_sync: the value must be reloaded", detail,
              "Call ectosync.load() again.");
}

/* A value that load() did not make, or that was altered. */
[[noreturn]] void bad_value(const std::string &detail) {
  throw Error(ERRCODE_INVALID_PARAMETER_VALUE,
              "ecto_sync: sync() needs a value made by ectosync.load()", detail);
}

/* Reads an integer member of the value ("relid", "seq", "ectosync"). */
uint64_t value_number(jb::View value, const char *key) {
  std::optional<jb::Elem> e = value.get(key);
  if (!e || !e->is_numeric())
    bad_value(std::string("Its key \"") + key + "\" is missing or not a number.");
  std::string text = jb::numeric_text(e->numeric());
  errno = 0;
  char *end = nullptr;
  uint64_t n = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || errno == ERANGE)
    bad_value(std::string("Its key \"") + key +
              "\" is not a 64-bit non-negative integer: " + text.substr(0, 40) + ".");
  return n;
}

/* A value's header, validated (bad_value otherwise). */
struct ValueHeader {
  uint64_t relid = 0, seq = 0, epoch = 0;
  jb::Elem assocs, rows;
  std::optional<jb::Elem> filter;
};

ValueHeader read_header(const Jsonb *value) {
  jb::View v(value);
  if (!v.is_object()) bad_value("The value is not a jsonb object.");
  if (value_number(v, "ectosync") != 1) bad_value("Its \"ectosync\" format version is not 1.");
  ValueHeader h;
  h.relid = value_number(v, "relid");
  if (h.relid > UINT32_MAX) bad_value("Its \"relid\" is not an oid.");
  h.seq = value_number(v, "seq");
  std::optional<jb::Elem> assocs = v.get("assocs"), epoch = v.get("epoch"), rows = v.get("rows");
  h.filter = v.get("filter");
  if (!assocs || !jb::View(*assocs).is_object())
    bad_value("Its key \"assocs\" is missing or not an object.");
  if (!epoch || !epoch->is_string()) bad_value("Its key \"epoch\" is missing or not a string.");
  if (!rows || !jb::View(*rows).is_array())
    bad_value("Its key \"rows\" is missing or not an array.");
  if (h.filter && !h.filter->is_null() && !jb::View(*h.filter).is_object())
    bad_value("Its key \"filter\" is neither null nor an object.");
  uint64_t ignored = 0;
  if (!parse_event_id(std::string(epoch->str()) + ":1", h.epoch, ignored))
    bad_value("Its \"epoch\" is not 16 hexadecimal digits.");
  if (h.epoch != database_epoch())
    reload_required("The value was loaded in another database, or before the server restarted " +
                    ("(epoch " + std::string(epoch->str()) + ")."));
  h.assocs = *assocs;
  h.rows = *rows;
  return h;
}

/*
 * A value that load() marked as one that cannot follow its tables: read
 * under ectosync.load_unwatched while no watch captured them (for reading
 * only), or in a transaction that changed them (a rollback would leave its
 * changes in the value, and no event would take them out).
 */
void refuse_unfollowable(const Jsonb *value) {
  jb::View v(value);
  auto marked = [&](const char *key) {
    std::optional<jb::Elem> e = v.get(key);
    return e && e->type == JENTRY_ISBOOL_TRUE;
  };
  if (marked("unwatched"))
    throw Error(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "ecto_sync: the value was loaded for reading only",
                "ectosync.load_unwatched read it while no watch captured every table of it: it "
                "would not follow their changes.",
                "Load it again once ectosync.watch() captures its tables.");
  if (marked("uncommitted"))
    reload_required(
        "The value was loaded in a transaction that changed its tables (or, under row level "
        "security, roles): a change that rolled back could be in it.");
}

/*
 * ZE001 when the value's assocs lead to other tables than when it was
 * loaded (its "tables": oids): a table renamed away and another given its
 * name, a foreign key made again.  The value holds the old tables' rows,
 * and the markers that came of the change name the old tables, which the
 * plan no longer holds.
 */
void refuse_moved_tables(const Jsonb *value, const Plan &plan) {
  std::optional<jb::Elem> tables = jb::View(value).get("tables");
  /* (every value of this server's run carries them: one of another run
   * fails its epoch first) */
  if (!tables) reload_required("Its key \"tables\" is missing.");
  jb::View loaded(*tables);
  std::vector<uint32_t> now = plan.tables();
  bool same = loaded.is_array() && loaded.size() == now.size();
  for (uint32_t i = 0; same && i < now.size(); i++) {
    jb::Elem t = loaded.at(i);
    same = t.is_numeric() && jb::numeric_text(t.numeric()) == std::to_string(now[i]);
  }
  if (!same)
    reload_required(
        "Its assocs lead to other tables than when it was loaded (a table renamed, or a "
        "foreign key made again).");
}

/* The plan of a value's shape (cached per backend by resolve_plan). */
const Plan &value_plan(const ValueHeader &h) {
  Jsonb *assocs_jsonb = jb::to_jsonb(jb::Node::copy(h.assocs));
  return resolve_plan(static_cast<uint32_t>(h.relid), assocs_jsonb);
}

/*
 * Whether a RELOAD marker of relid (0: every table) concerns the plan.  One
 * of row level security only concerns no role that bypasses it; and when
 * it only says that a table its policies read changed (kReloadPolicy,
 * policy_sources.cpp), only a caller whom row level security of relid
 * applies to: the others see every row whatever the policies read.  One of
 * roles (kReloadRoles, role_change.cpp) concerns a held value as it does a
 * caller under the policies (a held value that they started or stopped
 * applying to reloads anyway: changes.cpp); a client's value, of which
 * nobody knows whether it was read under them, whenever a table of the
 * plan has policies enabled.
 */
bool reload_concerns(const Plan &plan, uint32_t relid, uint16_t why, bool held) {
  std::vector<uint32_t> tables = plan.tables();
  if (relid != 0 && std::find(tables.begin(), tables.end(), relid) == tables.end()) return false;
  if (!row_security_only(why)) return true;
  /* (the caches of roles must know the change: the marker followed its
   * invalidation messages, role_change.cpp) */
  if (why & kReloadRoles) pg_call([] { AcceptInvalidationMessages(); });
  /* (its role may have bypassed row level security when it was read) */
  if ((why & kReloadRoles) && !held &&
      std::any_of(tables.begin(), tables.end(), row_security_enabled))
    return true;
  /* A role that bypasses row level security saw every row before and after
   * (one that started to: above, or changes.cpp). */
  if (bypasses_row_security()) return false;
  if (why & kReloadSecurity) return true; /* it may have stopped applying */
  auto secured = [](uint32_t t) {
    return pg_call([&] { return check_enable_rls(t, InvalidOid, true) == RLS_ENABLED; });
  };
  /* (kReloadPolicy, kReloadRoles: what the policies show changed) */
  if (relid != 0) return secured(relid);
  return std::any_of(tables.begin(), tables.end(), secured);
}

/* The name of table relid of the plan, as payloads show it ("": 0, every table). */
std::string plan_table_name(const Plan &plan, uint32_t relid) {
  std::vector<const PlanNode *> stack{plan.root.get()};
  while (relid != 0 && !stack.empty()) {
    const PlanNode *n = stack.back();
    stack.pop_back();
    if (n->table.relid == relid) return n->table.display();
    for (const Assoc &a : n->assocs) {
      if (a.join && a.join->relid == relid) return a.join->display();
      stack.push_back(a.target.get());
    }
  }
  return relid == 0 ? std::string() : std::to_string(relid);
}

/*
 * Whether the logged event ev may change a value of plan: an event of a
 * table the value holds (the caller must then be able to read them all:
 * check_select_privileges).  A RELOAD marker of such a table raises ZE001,
 * saying why it was queued; one of another table leaves the value alone.
 * held: the value is held in this session (reload_concerns()).
 */
bool event_concerns(const Plan &plan, const ValueHeader &h, const Event &ev, bool held) {
  if (ev.op == Op::Reload) {
    if (reload_concerns(plan, ev.relid, ev.why, held))
      reload_required(
          reload_reason(ev.why, plan_table_name(plan, ev.relid), format_event_id(h.epoch, ev.seq)));
    return false;
  }
  std::vector<uint32_t> tables = plan.tables();
  return std::find(tables.begin(), tables.end(), ev.relid) != tables.end();
}

Jsonb *with_seq(Jsonb *value, uint64_t seq, std::optional<jb::Node> rows = std::nullopt);

/*
 * The logged event ev (its seq: ev.seq) applied to value: a new value with
 * seq ev.seq, or value itself when the event cannot touch it.  The caller
 * has checked that the value's tables may be read.
 */
Jsonb *apply_event(Jsonb *value, const ValueHeader &h, const Plan &plan, const Event &ev) {
  if (ev.seq <= h.seq) return value; /* already reflected: idempotent */
  if (!event_concerns(plan, h, ev, false)) return value;
  Patcher patcher(plan, ev, h.filter ? jb::View(*h.filter) : jb::View());
  patcher.prepare();
  return with_seq(value, ev.seq, patcher.patch_root(jb::View(h.rows)));
}

/* value with its seq, and its rows if given, replaced. */
Jsonb *with_seq(Jsonb *value, uint64_t seq, std::optional<jb::Node> rows) {
  Numeric seq_num = pg_call([&] { return int64_to_numeric(static_cast<int64>(seq)); });
  jb::View v(value);
  jb::Node out = jb::Node::object();
  for (uint32_t i = 0; i < v.size(); i++) {
    std::string_view key = v.key(i);
    if (key == "seq")
      out.set(key, jb::Node::number(seq_num));
    else if (key == "rows" && rows)
      out.set(key, std::move(*rows));
    else
      out.set(key, jb::Node::copy(v.value(i)));
  }
  return jb::to_jsonb(out);
}

/*
 * The parts that have rows, by their first rows: what routes a root key.
 * A key belongs in the last part whose first row is at or below it, else
 * in the first part; a value without rows routes everything to part 0.
 * Kept across the events of a call, and updated as parts are replaced.
 */
class Routes {
 public:
  explicit Routes(const std::vector<Jsonb *> &parts) {
    for (size_t i = 0; i < parts.size(); i++) {
      jb::View part(parts[i]);
      if (part.size() == 0) continue;
      filled_.push_back(i);
      first_.emplace_back(part.at(0));
    }
    if (filled_.empty()) {
      filled_.push_back(0);
      first_.emplace_back();
    }
  }
  size_t size() const { return filled_.size(); }
  size_t part(size_t f) const { return filled_[f]; }
  /* The rows of route f run from first(f) (none: from the lowest key) up
   * to first(f + 1) (none: to the end). */
  jb::View lower(size_t f) const { return f > 0 ? first_[f] : jb::View(); }
  jb::View upper(size_t f) const { return f + 1 < size() ? first_[f + 1] : jb::View(); }
  size_t route(const Key &key, const std::vector<Column> &pk) const {
    size_t lo = 0, hi = size();
    while (hi - lo > 1) {
      size_t mid = lo + (hi - lo) / 2;
      if (compare_row_key(first_[mid], pk, key) <= 0)
        lo = mid;
      else
        hi = mid;
    }
    return lo;
  }
  /* Route f's part is now part (call for the highest f first). */
  void replaced(size_t f, const Jsonb *part) {
    jb::View rows(part);
    if (rows.size() > 0) {
      first_[f] = jb::View(rows.at(0));
    } else if (size() > 1) {
      filled_.erase(filled_.begin() + f);
      first_.erase(first_.begin() + f);
    } else {
      first_[f] = jb::View();
    }
  }

 private:
  std::vector<size_t> filled_;
  std::vector<jb::View> first_;
};

/*
 * The event's changes to the parts of a value (parts.hpp): only the parts
 * that hold the root keys the event may change are patched (all of them
 * when any root row may change).  A changed part is replaced by a new one
 * written in made; a replaced part that was made there too (fresh) is
 * freed.  Whether some part changed.
 */
bool patch_parts(const Plan &plan, Patcher &patcher, std::vector<Jsonb *> &parts, Routes &routes,
                 std::vector<bool> &fresh, MemoryContext made, TouchedRows *touched) {
  std::optional<std::vector<Key>> keys = patcher.root_keys();
  if (keys && keys->empty()) return false;
  std::vector<bool> visit(routes.size(), !keys);
  if (keys)
    for (const Key &k : *keys) visit[routes.route(k, plan.root->table.pk)] = true;
  /* Bounds come from the parts as the event found them: the routes move
   * on once every part is patched. */
  std::vector<std::pair<size_t, Jsonb *>> replaced;
  for (size_t f = 0; f < routes.size(); f++) {
    if (!visit[f]) continue;
    size_t i = routes.part(f);
    std::optional<jb::Node> rows =
        patcher.patch_root(jb::View(parts[i]), routes.lower(f), routes.upper(f));
    if (!rows) continue;
    Jsonb *part = in_context(made, [&] { return jb::to_jsonb(*rows); });
    if (fresh[i]) pg_call([&] { pfree(parts[i]); });
    if (touched) patcher.touched((*touched)[i]);
    parts[i] = part;
    fresh[i] = true;
    replaced.emplace_back(f, part);
  }
  for (auto it = replaced.rbegin(); it != replaced.rend(); ++it)
    routes.replaced(it->first, it->second);
  return !replaced.empty();
}

/* Reads event seq of the log, or says why the value must be reloaded. */
void logged_event(uint64_t epoch, uint64_t seq, Event &ev) {
  switch (event_lookup(seq, ev)) {
    case LogLookup::Found:
      return;
    case LogLookup::Expired:
      reload_required("The event " + format_event_id(epoch, seq) +
                      " is no longer in the event log.");
    case LogLookup::NoRecord:
      reload_required("The event " + format_event_id(epoch, seq) +
                      " has no record: a RELOAD marker found no room in the queue.");
    case LogLookup::Unknown:
      throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "ecto_sync: unknown event",
                  "No event " + format_event_id(epoch, seq) + " was queued in this database.",
                  "Pass the payload of an ectosync_<relid> notification.");
  }
}

/* The events memoized while an EventMemoScope lives (by seq). */
std::unordered_map<uint64_t, Event> *event_memo = nullptr;

/* Event seq of the log, decoded once while an EventMemoScope lives (else
 * into local). */
const Event &memoized_event(uint64_t epoch, uint64_t seq, Event &local) {
  if (!event_memo) {
    logged_event(epoch, seq, local);
    return local;
  }
  auto it = event_memo->find(seq);
  if (it != event_memo->end()) return it->second;
  logged_event(epoch, seq, local);
  if (event_memo->size() >= 16384) event_memo->clear(); /* (bounded) */
  return event_memo->emplace(seq, std::move(local)).first->second;
}

/*
 * The whole call: validation, the event, the plan, the patch.  The value
 * is brought up to the event through every logged event after its seq (in
 * order; those of other tables leave its rows alone), and no further than
 * the worker has loaded: the rows are cached then, and the event's own
 * notification follows its loading.  Its seq becomes that point (under
 * row level security, what the worker loaded: see below).  So the
 * payload decides only how far: one that anybody may NOTIFY (of a seq
 * ahead of the real ones, of another server run or database, naming
 * another table) neither skips an event nor applies one before its rows
 * are cached, and events may come in any order.  A value whose seq the
 * log no longer reaches must be loaded again (ZE001): nothing tells that
 * none of the events that left it were of its tables.
 */
Jsonb *sync_value(Jsonb *value, const std::string &event_text) {
  refuse_transaction_snapshot("sync");
  ValueHeader h = read_header(value);
  refuse_unfollowable(value);
  EventRef ref;
  if (!parse_payload(event_text, ref))
    throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "ecto_sync: invalid event",
                "The event \"" + event_text.substr(0, 200) +
                    "\" is neither a notification payload nor an event id.",
                "Pass the payload of an ectosync_<relid> notification.");
  /* (the value is of this run, read_header() checked: this event is not) */
  if (ref.epoch != h.epoch) return value;
  uint64_t loaded = pg_call([] { return loaded_seq(); });
  uint64_t upto = std::min<uint64_t>(ref.seq, loaded);
  if (upto <= h.seq) return value; /* already reflected, or not loaded yet */
  const Plan &plan = value_plan(h);
  refuse_moved_tables(value, plan);
  refuse_own_changes(plan, "sync");
  /* Before the log is read: a caller who may not read the tables learns
   * nothing of them, neither a marker's reason nor whether they were
   * written since the value's seq. */
  check_select_privileges(plan);
  /* Under row level security, only a value the server made for the caller,
   * at its seq (seal.hpp): a forged one would learn from the patch what the
   * policies hide.  (Before any event is read.) */
  bool sealed = row_security(plan);
  ValueDigest digest{};
  if (sealed && !seal_holds(value, &digest))
    reload_required(
        "Row level security applies to a table of the value, and its \"seal\" is "
        "missing or not one that load() or sync() gave it, at its seq, for this "
        "caller (its user, session user and custom settings).");
  /* ... and all the way to what the worker loaded.  Rows are read as they
   * are now: stopped at an earlier event, the value would show the
   * caller's own later changes or not, as the patcher read a list again
   * or not, and that may turn on the columns of rows the caller cannot
   * see. */
  if (sealed) upto = loaded;
  Jsonb *given = value;
  /* Each event's work in a context of its own, reset after it: only the
   * value it made is kept (copied out), and the one before it freed, so
   * that a client far behind costs one value's memory, not one per event. */
  MemoryContext caller = CurrentMemoryContext;
  OwnedContext scratch(pg_call([&] {
    return AllocSetContextCreate(caller, "ecto_sync sync event", ALLOCSET_DEFAULT_SIZES);
  }));
  /* The heads in chunks: the slot's lock, which every committing writer
   * needs, is held for one chunk at a time. */
  constexpr uint64_t kChunk = 4096;
  std::vector<uint32_t> tables = plan.tables();
  std::vector<EventHead> heads;
  heads.reserve(std::min<uint64_t>(upto - h.seq, kChunk));
  for (uint64_t from = h.seq; from < upto;) {
    uint64_t to = std::min<uint64_t>(upto, from + kChunk);
    heads.clear();
    if (pg_call([&] { return event_heads(from, to, heads); }) != LogLookup::Found) {
      /* An event left the log (it may have been one of the value's), or a
       * marker found no room: ZE001, saying which. */
      Event ev;
      logged_event(h.epoch, from + heads.size() + 1, ev);
      reload_required("The event log moved on while it was read.");
    }
    for (const EventHead &head : heads) {
      if (head.op != Op::Reload &&
          std::find(tables.begin(), tables.end(), head.relid) == tables.end())
        continue;
      pg_call([] { CHECK_FOR_INTERRUPTS(); });
      Event local;
      Jsonb *next = in_context(scratch.get(), [&] {
        return apply_event(value, h, plan, memoized_event(h.epoch, head.seq, local));
      });
      if (next != value) {
        Jsonb *kept = pg_call([&] {
          Jsonb *copy = (Jsonb *)palloc(VARSIZE(next));
          memcpy(copy, next, VARSIZE(next));
          return copy;
        });
        if (value != given) pg_call([&] { pfree(value); });
        value = kept;
        h = read_header(value);
      }
      pg_call([&] { MemoryContextReset(scratch.get()); });
    }
    from = to;
  }
  /* (past the early return, upto > the given seq: the result is always new) */
  Jsonb *result = h.seq < upto ? with_seq(value, upto) : value;
  /* (sealed again at its new seq; a seal that no longer applies goes: sync()
   * must not sign what it was not asked to check) */
  if (sealed) return with_seal(result, value == given ? &digest : nullptr);
  return jb::View(result).get("seal") ? without_seal(result) : result;
}

}  // namespace

EventMemoScope::EventMemoScope() {
  if (!event_memo) {
    event_memo = new std::unordered_map<uint64_t, Event>();
    owner_ = true;
  }
}

EventMemoScope::~EventMemoScope() {
  if (!owner_) return;
  delete event_memo;
  event_memo = nullptr;
}

void sync_parts(const Plan &plan, PartedValue &value, uint64_t after, uint64_t upto,
                std::vector<uint64_t> *changed_by, TouchedRows *touched,
                const std::function<bool(const Event &)> &may_concern) {
  ValueHeader h = read_header(value.head);
  jb::View filter = h.filter ? jb::View(*h.filter) : jb::View();
  /* New parts are written in the caller's context; whatever else an event
   * needs goes with the scratch context after it. */
  MemoryContext made = CurrentMemoryContext;
  OwnedContext scratch(pg_call(
      [&] { return AllocSetContextCreate(made, "ecto_sync sync_parts", ALLOCSET_DEFAULT_SIZES); }));
  std::vector<bool> fresh(value.parts.size(), false);
  bool readable = false;
  Routes routes(value.parts);
  if (touched) touched->resize(value.parts.size());
  bool unchanged = true; /* the value is as may_concern knows it */
  for (uint64_t seq = after + 1; seq <= upto; seq++) {
    bool changed = in_context(scratch.get(), [&] {
      Event local;
      const Event &ev = memoized_event(h.epoch, seq, local);
      if (unchanged && may_concern && !may_concern(ev)) return false;
      if (!event_concerns(plan, h, ev, true)) return false;
      if (!readable) check_select_privileges(plan); /* once a call */
      readable = true;
      Patcher patcher(plan, ev, filter);
      patcher.prepare();
      return patch_parts(plan, patcher, value.parts, routes, fresh, made, touched);
    });
    pg_call([&] { MemoryContextReset(scratch.get()); });
    unchanged = unchanged && !changed;
    if (changed && changed_by) changed_by->push_back(seq);
  }
}

}  // namespace ectosync

/* SQL: ectosync.sync(value jsonb, event text) RETURNS jsonb */
ECTOSYNC_FUNCTION(ectosync_sync) {
  Jsonb *value = PG_GETARG_JSONB_P(0);
  text *event = PG_GETARG_TEXT_PP(1);
  Jsonb *result = [&] {
    return ectosync::sync_value(value, std::string(VARDATA_ANY(event), VARSIZE_ANY_EXHDR(event)));
  }();
  PG_RETURN_JSONB_P(result);
}

/*
 * held.cpp: values held in the session, patched in place, sent as changes.
 *
 * With sync(value, event) a client sends its whole value and gets it back
 * on every notification: for a value of hundreds of kB, parsing and
 * printing it costs more than the change.  A session can instead hold the
 * value itself:
 *
 *   hold(name, tbl, assocs, filter, listen)
 *                                    load, keep the value under name; returns
 *                                    it (version 0); with listen, LISTEN to
 *                                    the value's own channel
 *   changes(name, version)           apply every event the worker has loaded
 *                                    since; returns {"version", "seq",
 *                                    "patch"[, "events"]}: the JSON Patch
 *                                    (RFC 6902) from the client's version to
 *                                    the new one (empty: nothing changed; the
 *                                    version moves when the held value
 *                                    changes), the last event seq it reflects (a
 *                                    client can ignore notifications of
 *                                    events up to it), and the seqs of the
 *                                    events that changed the value
 *   wait_changes(name, version, timeout_ms)
 *                                    changes() once the value changed: the
 *                                    worker sets the waiting backend's latch
 *                                    for its events only, where LISTEN wakes
 *                                    every listener of the database
 *   release(name), held()            forget a value; list them
 *
 * changes() reads the event log itself, so it needs no payloads: a client
 * calls it on any notification, and one call covers all events so far.  It
 * applies events only up to loaded_seq(): their rows are cached, and each
 * later event is notified once the worker has loaded it.  When the value
 * must be reloaded (ZE001 for sync()), changes() reloads it here and the
 * patch replaces the whole value ("path": "").  A client whose version is
 * not the held one (it missed a reply) gets the whole value too.
 *
 * Notifications: hold() publishes what the value depends on (its
 * interest, interest.hpp) and LISTENs to a channel of its own,
 * "ectosync_held_<entry>_<generation>"; the worker notifies that channel
 * only for events that may change the value.  changes() publishes the new
 * interest whenever the value changed, then looks again at what the worker
 * loaded meanwhile (those events were matched against the old interest),
 * so no event that concerns the value goes unnotified.  Without a free
 * entry (ectosync.max_held_values), the value listens to its tables (and
 * to "ectosync_session_<pid>" for the notification hold() sends itself).
 *
 * Held values live in this backend's memory ("ecto_sync held values", a
 * child of TopMemoryContext), one copy each, until release() or the end of
 * the session.  They are read as the role that called hold(); changes()
 * refuses another role, so SET ROLE cannot read through someone's value.
 *
 * Sharing: a value without a filter, of tables without row level security
 * for the caller, is shared by the sessions that hold it (held_shared.hpp):
 * kept once in shared memory; each change is applied once, during the turn
 * of whichever session asks first, and published with its patch; every
 * session answers its client from the published patches.  hold() attaches
 * to a value already shared (after applying every event committed before
 * the call).  A session leaves with a copy of its own when its transaction
 * wrote or holds a snapshot (it would read what others cannot), when it
 * waited too long for another's turn, or when shared memory runs out; it
 * loads its own when row level security comes to apply.
 */
#include "value/catalog.hpp"
#include "value/diff.hpp"
#include "held/held_shared.hpp"
#include "core/interest.hpp"
#include "value/keys.hpp"
#include "pg/pg_boundary.hpp"
#include "settings.hpp"
#include "shmem/shared.hpp"
#include "value/sync.hpp"

extern "C" {
#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "commands/async.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rls.h"
#include "storage/ipc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(ectosync_hold);
PG_FUNCTION_INFO_V1(ectosync_changes);
PG_FUNCTION_INFO_V1(ectosync_wait_changes);
PG_FUNCTION_INFO_V1(ectosync_release);
PG_FUNCTION_INFO_V1(ectosync_held);
}

#include <algorithm>
#include <map>
#include <memory>
#include <string>

namespace ectosync {
namespace {

struct Held {
  Oid relid = InvalidOid;
  Jsonb *assocs = nullptr, *filter = nullptr; /* held_context; filter may be null */
  Oid role = InvalidOid;                      /* who called hold() */
  PartedValue value;                          /* in context (parts.hpp); none when shared */
  MemoryContext context = nullptr;            /* the value's own, under held_context */
  uint64_t scanned = 0;                       /* events up to it are reflected */
  int64_t version = 0;                        /* bumped by every non-empty patch */
  int shared = -1;                            /* its shared value (held_shared.hpp), or -1 */
  uint64_t base = 0;                          /* the shared version that is our version 0 */
  int entry = -1;                             /* its interest entry, or -1 */
  bool listening = false;                     /* hold() LISTENed for it */
  uint32_t generation = 0;                    /* of the entry */
};

MemoryContext held_context = nullptr;
/* The session's values by name; allocated once, lives as long as the backend. */
std::map<std::string, Held> &held_values() {
  static auto *values = new std::map<std::string, Held>();
  return *values;
}

MemoryContext held_memory() {
  if (!held_context)
    held_context = pg_call([] {
      return AllocSetContextCreate(TopMemoryContext, "ecto_sync held values",
                                   ALLOCSET_DEFAULT_SIZES);
    });
  return held_context;
}

/* A copy of j in context (held_context by default). */
Jsonb *keep(const Jsonb *j, MemoryContext context = nullptr) {
  if (!j) return nullptr;
  if (!context) context = held_memory();
  return pg_call([&] {
    void *p = MemoryContextAlloc(context, VARSIZE(j));
    memcpy(p, j, VARSIZE(j));
    return static_cast<Jsonb *>(p);
  });
}

/*
 * A context for a held value (its head and parts), or for what one
 * changes() call makes.
 */
MemoryContext value_context() {
  MemoryContext parent = held_memory();
  return pg_call([&] {
    return AllocSetContextCreate(parent, "ecto_sync held value", ALLOCSET_DEFAULT_SIZES);
  });
}

void forget(Held &h) {
  if (h.entry >= 0) {
    interest_detach(h.entry);
    /* The entry's channel dies with it (another value will get a new one). */
    if (h.listening) {
      std::string channel = interest_channel(h.entry, h.generation);
      pg_call([&] { Async_Unlisten(channel.c_str()); });
    }
  }
  held_share_detach(h.shared);
  pg_call([&] {
    for (Jsonb *j : {h.assocs, h.filter})
      if (j) pfree(j);
    if (h.context) MemoryContextDelete(h.context);
  });
  h = Held();
}

/* At exit (before_shmem_exit): this backend no longer holds its shared
 * values.  Detaching cannot fail; nothing may escape into PostgreSQL. */
void detach_shared_at_exit(int, Datum) {
  try {
    for (auto &entry : held_values()) {
      held_share_detach(entry.second.shared);
      entry.second.shared = -1;
    }
  } catch (...) {
  }
}

/* A text argument as a string (detoasted by the caller, outside pg_entry). */
std::string text_string(const text *t) {
  return std::string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/* The value held under name, for the current role. */
Held &find_held(const std::string &name) {
  auto it = held_values().find(name);
  if (it == held_values().end())
    throw Error(ERRCODE_UNDEFINED_OBJECT,
                "ecto_sync: no value is held under the name \"" + name + "\"", "",
                "Call ectosync.hold() first; held values last as long as the session.");
  Held &h = it->second;
  if (h.role != GetUserId()) {
    char *holder = pg_call([&] { return GetUserNameFromId(h.role, true); });
    throw Error(ERRCODE_INSUFFICIENT_PRIVILEGE,
                "ecto_sync: the value \"" + name + "\" is held by another role",
                std::string("It was loaded as role \"") + (holder ? holder : "?") + "\".",
                "Call ectosync.hold() again as this role.");
  }
  return h;
}

uint64_t value_seq(const Jsonb *value) {
  std::optional<jb::Elem> seq = jb::View(value).get("seq");
  if (!seq || !seq->is_numeric()) return 0;
  return pg_call([&] {
    return static_cast<uint64_t>(
        DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(seq->numeric()))));
  });
}

/*
 * The interest of a value (see interest.hpp for what it holds): walks the
 * rows with the plan, adding the key values that events of related rows
 * carry.
 */
class InterestBuilder {
 public:
  explicit InterestBuilder(Interest &in) : in_(in) {}

  /* A key column of relid and the value in a row that matters for it. */
  void key(uint32_t relid, int16_t attnum, const std::optional<jb::Elem> &v) {
    in_.add_column(relid, attnum);
    if (!v || v->is_null()) return;
    if (std::optional<std::string> text = elem_text(*v))
      in_.add(relid, attnum, *text);
    else
      in_.add_wild(relid); /* not a key type capture writes: every event */
  }

  void keys(uint32_t relid, const std::vector<Column> &cols, jb::View row,
            const std::vector<Column> &from) {
    for (size_t i = 0; i < cols.size() && i < from.size(); i++)
      key(relid, cols[i].attnum, row.get(from[i].name));
  }

  /* The rows of a has_many/many_to_many list, or the one row of a has_one/belongs_to. */
  template <typename Fn>
  static void each_row(const std::optional<jb::Elem> &sub, Fn fn) {
    if (!sub) return;
    jb::View v(*sub);
    if (v.is_array()) {
      for (uint32_t i = 0; i < v.size(); i++) fn(jb::View(v.at(i)));
    } else if (v.is_object()) {
      fn(v);
    }
  }

  void row(jb::View r, const PlanNode &n) {
    for (const Assoc &a : n.assocs) {
      uint32_t target = a.target->table.relid;
      std::optional<jb::Elem> sub = r.get(a.name);
      if (a.kind == AssocKind::ManyToMany) {
        keys(a.join->relid, a.join_owner_cols, r, a.owner_cols);
        each_row(sub, [&](jb::View t) {
          keys(target, a.target_cols, t, a.target_cols);
          row(t, *a.target);
        });
      } else {
        /* has_many/has_one: the children's foreign key; belongs_to: the target's key */
        keys(target, a.target_cols, r, a.owner_cols);
        each_row(sub, [&](jb::View t) { row(t, *a.target); });
      }
    }
  }

 private:
  Interest &in_;
};

std::unique_ptr<Interest> interest_of(const Plan &plan, const PartedValue &value,
                                      const Jsonb *filter) {
  auto in = std::make_unique<Interest>();
  in->clear();
  for (uint32_t relid : plan.tables()) in->add_table(relid);
  jb::View f = filter ? jb::View(filter) : jb::View();
  if (!f.is_object() || f.size() == 0) {
    /* every row of the root may enter, every child hangs from a held row */
    for (uint32_t relid : plan.tables()) in->add_wild(relid);
    return in;
  }
  const TableInfo &root = plan.root->table;
  InterestBuilder b(*in);
  for (uint32_t i = 0; i < f.size(); i++) {
    std::string name(f.key(i));
    int16_t attnum = pg_call([&] { return get_attnum(root.relid, name.c_str()); });
    jb::Elem v = f.value(i);
    if (attnum <= 0 || v.is_null())
      in->add_wild(root.relid); /* IS NULL filters: events carry no text for NULL */
    else
      b.key(root.relid, attnum, v);
  }
  for (const Jsonb *part : value.parts)
    InterestBuilder::each_row(jb::root_elem(part), [&](jb::View r) {
      b.keys(root.relid, root.pk, r, root.pk);
      b.row(r, *plan.root);
    });
  return in;
}

/* Publishes the interest of value, which h holds or is about to. */
void publish_interest(const Held &h, const PartedValue &value) {
  if (h.entry < 0) return;
  std::unique_ptr<Interest> in = interest_of(resolve_plan(h.relid, h.assocs), value, h.filter);
  interest_publish(h.entry, *in);
}

/* Whether the transaction reads what every session reads: no writes of
 * its own, no transaction snapshot (what a shared value may be made of). */
bool reads_committed_now() {
  return !IsolationUsesXactSnapshot() && !TransactionIdIsValid(GetTopTransactionIdIfAny());
}

/* Whether row level security applies to the caller on a table of plan. */
bool row_security(const Plan &plan) {
  for (uint32_t relid : plan.tables())
    if (pg_call([&] { return check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED; }))
      return true;
  return false;
}

/*
 * Whether a value of plan may be shared (held_shared.hpp): no filter, no
 * row level security for this role on its tables, and a transaction that
 * reads what the others do.
 */
bool may_share(const Plan &plan, const Jsonb *filter) {
  return !filter && held_sharing_enabled() && reads_committed_now() && !row_security(plan);
}

/* What shared values are matched by: the shape, and the part size they are cut by. */
std::string share_key(const Plan &plan) {
  return plan.spec + " " + std::to_string(settings.held_part_bytes);
}

bool apply_shared(const Held &h, uint64_t upto);

/*
 * Waits (at most timeout_ms) until the worker has loaded every event
 * committed before the call; whether it did.
 */
bool worker_caught_up(int timeout_ms) {
  uint64_t target = last_seq();
  TimestampTz start = GetCurrentTimestamp();
  while (loaded_seq() < target) {
    if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), timeout_ms)) return false;
    pg_call([] {
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1,
                      PG_WAIT_EXTENSION);
      ResetLatch(MyLatch);
      CHECK_FOR_INTERRUPTS();
    });
  }
  return true;
}

/*
 * The value of plan as the shared one has it, attached (shared: its slot,
 * base: its version now), with every event committed before the call
 * applied (so that it is as fresh as a load; a value shared before a
 * capture restart is loaded again then); the value is shared first if no
 * session shares it
 * yet.  When it cannot be shared (no slot, no memory), the value loaded,
 * with shared = -1.
 */
Jsonb *share_value(const Plan &plan, Jsonb *assocs, int &shared, uint64_t &base) {
  static bool exit_hook = false;
  if (!exit_hook) {
    pg_call([] { before_shmem_exit(detach_shared_at_exit, 0); });
    exit_hook = true;
  }
  check_select_privileges(plan);
  uint32_t relid = plan.root->table.relid;
  std::string key = share_key(plan);
  shared = held_share_find(relid, key);
  if (shared < 0) {
    Jsonb *loaded = load_value(relid, assocs, nullptr);
    MemoryContext scratch = value_context();
    try {
      PartedValue parts = in_context(scratch, [&] { return split_value(loaded); });
      shared = held_share_create(relid, key, parts, value_seq(loaded));
    } catch (...) {
      pg_call([&] { MemoryContextDelete(scratch); });
      throw;
    }
    pg_call([&] { MemoryContextDelete(scratch); });
    if (shared < 0) return loaded;
  }
  try {
    Held probe;
    probe.relid = relid;
    probe.assocs = assocs;
    probe.shared = shared;
    /* Every event committed before the call, once the worker has loaded
     * it (the cache may hold an older version of its row until then): the
     * value shows what a load would.  A worker far behind: load instead. */
    if (!worker_caught_up(1000) || !apply_shared(probe, loaded_seq())) {
      held_share_detach(shared);
      shared = -1;
      return load_value(relid, assocs, nullptr);
    }
    SharedSince now = held_share_since(shared, UINT64_MAX); /* the whole value */
    base = now.version;
    return join_value(now.value);
  } catch (...) {
    held_share_detach(shared);
    throw;
  }
}

/*
 * ectosync.hold(name, tbl, assocs, filter, listen): load and keep; with
 * listen, LISTEN to the value's channel (or its tables' channels when no
 * interest entry is free).  A notification to itself, delivered when
 * this transaction commits, makes the client ask for changes once: events
 * notified before its LISTEN took effect are then covered.
 */
Jsonb *hold(const std::string &name, Oid relid, Jsonb *assocs, Jsonb *filter, bool listen) {
  const Plan &plan = resolve_plan(relid, assocs);
  int shared = -1;
  uint64_t base = 0;
  Jsonb *value = may_share(plan, filter) ? share_value(plan, assocs, shared, base) : nullptr;
  if (!value) value = load_value(relid, assocs, filter);
  auto &values = held_values();
  auto it = values.find(name);
  if (it != values.end()) {
    forget(it->second);
    values.erase(it);
  }
  Held h;
  h.relid = relid;
  h.role = GetUserId();
  h.assocs = keep(assocs);
  h.filter = keep(filter);
  h.shared = shared;
  h.base = base;
  if (shared < 0) {
    h.context = value_context();
    h.value = in_context(h.context, [&] { return split_value(value); });
    h.scanned = value_seq(value);
  }
  h.listening = listen;
  h.entry = pg_call([&] { return interest_attach(h.generation, listen); });
  values[name] = h;
  publish_interest(h, h.value);
  if (listen) {
    /* The value's own channel; without an entry, its tables' channels and
     * one of this session's (table channels are shared with other
     * clients: nothing but event payloads goes there). */
    std::string own = h.entry >= 0 ? interest_channel(h.entry, h.generation)
                                   : "ectosync_session_" + std::to_string(MyProcPid);
    std::vector<std::string> channels{own};
    if (h.entry < 0)
      for (uint32_t t : resolve_plan(relid, assocs).tables()) channels.push_back(channel_name(t));
    for (const std::string &c : channels) pg_call([&] { Async_Listen(c.c_str()); });
    pg_call([&] { Async_Notify(own.c_str(), "{}"); });
  }
  return value;
}

/*
 * {"version": version, "seq": seq, "patch": ops[, "events": [...]][,
 * "reloaded": why]}: events are the seqs of the events that changed the
 * value (the first 100), so that a client can tell how long each took to
 * reach it; reloaded says why the patch replaces the whole value.
 */
Jsonb *envelope(int64_t version, uint64_t seq, jb::Node ops,
                const std::vector<uint64_t> &changed_by,
                const std::optional<std::string> &reloaded) {
  auto number = [](int64_t n) {
    return jb::Node::number(pg_call([&] { return int64_to_numeric(n); }));
  };
  jb::Node out = jb::Node::object();
  out.set("version", number(version));
  out.set("seq", number(static_cast<int64_t>(seq)));
  out.set("patch", std::move(ops));
  if (!changed_by.empty()) {
    jb::Node events = jb::Node::array();
    for (size_t i = 0; i < changed_by.size() && i < 100; i++)
      events.push(number(static_cast<int64_t>(changed_by[i])));
    out.set("events", std::move(events));
  }
  if (reloaded) out.set("reloaded", jb::Node::string(*reloaded));
  return jb::to_jsonb(out);
}

/* The whole value as one operation. */
jb::Node replace_all(const PartedValue &value) {
  Jsonb *whole = join_value(value);
  jb::Node op = jb::Node::object();
  op.set("op", jb::Node::string("replace"));
  op.set("path", jb::Node::string(""));
  op.set("value", jb::Node::copy(jb::root_elem(whole)));
  jb::Node ops = jb::Node::array();
  ops.push(std::move(op));
  return ops;
}

/*
 * The events loaded after scanned applied to value, its new parts written
 * in made_in (ZE001: loaded again there; then reloaded says why).
 * Advances scanned.
 */
void catch_up(const Held &h, PartedValue &value, MemoryContext made_in, uint64_t &scanned,
              std::optional<std::string> &reloaded, std::vector<uint64_t> &changed_by,
              TouchedRows &touched, uint64_t upto = loaded_seq()) {
  if (upto <= scanned) return;
  in_context(made_in, [&] {
    try {
      sync_parts(value, scanned, upto, &changed_by, &touched);
      scanned = upto;
    } catch (const Error &e) {
      if (e.sqlstate != ERRCODE_ECTOSYNC_RELOAD) throw;
      Jsonb *whole = load_value(h.relid, h.assocs, h.filter);
      value = split_value(whole);
      touched.clear(); /* (a reloaded value is sent whole) */
      scanned = value_seq(whole);
      reloaded = e.detail;
    }
  });
}

/*
 * The held value becomes current, whose new parts were made in made_in:
 * after a reload all of it (made_in becomes the value's context), else
 * the parts that changed, copied.  made_in is gone once this returns; if
 * it throws, the held value is as it was and made_in is the caller's.
 */
void move_on(Held &h, PartedValue &current, bool reloaded, MemoryContext made_in) {
  if (reloaded) {
    std::swap(h.context, made_in);
  } else if (current != h.value) {
    std::vector<size_t> changed;
    for (size_t i = 0; i < current.parts.size(); i++)
      if (current.parts[i] != h.value.parts[i]) changed.push_back(i);
    std::vector<Jsonb *> copies;
    try {
      for (size_t i : changed) copies.push_back(keep(current.parts[i], h.context));
    } catch (...) {
      pg_call([&] {
        for (Jsonb *p : copies) pfree(p);
      });
      throw;
    }
    for (size_t k = 0; k < changed.size(); k++) {
      Jsonb *replaced = h.value.parts[changed[k]];
      current.parts[changed[k]] = copies[k];
      pg_call([&] { pfree(replaced); });
    }
  }
  h.value = current;
  pg_call([&] { MemoryContextDelete(made_in); });
  /* Nothing may throw from here on: made_in is gone (or is the value's).
   * A rebalance that fails (out of memory) leaves the parts as they were,
   * which is the same value, only cut less evenly. */
  try {
    in_context(h.context, [&] { rebalance(h.value); });
  } catch (...) {
  }
}

struct Reply {
  Jsonb *envelope;
  bool changed; /* the patch is not empty */
};

/* changes() with what it makes written in made_in (see move_on). */
Reply changes_made_in(Held &h, std::optional<int64_t> client_version, MemoryContext made_in) {
  uint64_t scanned = h.scanned;
  std::optional<std::string> reloaded; /* why */
  std::vector<uint64_t> changed_by;
  PartedValue current = h.value;
  TouchedRows touched;
  catch_up(h, current, made_in, scanned, reloaded, changed_by, touched);
  /* A changed value has a new interest.  Events the worker matched against
   * the old one while we worked are caught up with here; if it keeps
   * loading more, a notification to ourselves brings the client back. */
  PartedValue published = h.value;
  for (int round = 0; current != published && h.entry >= 0; round++) {
    if (round == 4) {
      /* (wait_changes() callers come back anyway, and start by catching up) */
      if (h.listening) {
        std::string channel = interest_channel(h.entry, h.generation);
        pg_call([&] { Async_Notify(channel.c_str(), "{}"); });
      }
      break;
    }
    publish_interest(h, current);
    published = current;
    catch_up(h, current, made_in, scanned, reloaded, changed_by, touched);
  }
  bool behind = client_version && *client_version != h.version;
  int64_t version = h.version;
  Reply result;
  if (reloaded) {
    version++;
    result = Reply{envelope(version, scanned, replace_all(current), changed_by, reloaded), true};
  } else {
    Diff diff(resolve_plan(h.relid, h.assocs));
    if (current != h.value) diff.parts(h.value.parts, current.parts, touched);
    bool changed = diff.count() > 0;
    if (changed) version++;
    jb::Node ops = behind ? replace_all(current) : std::move(diff.ops());
    result = Reply{envelope(version, scanned, std::move(ops), changed_by, std::nullopt),
                   behind || changed};
  }
  /* Only now, with the reply made, does the held value move on. */
  move_on(h, current, reloaded.has_value(), made_in);
  h.scanned = scanned;
  h.version = version;
  return result;
}

/*
 * A shared h goes on with a value of its own, which make() writes (in
 * CurrentMemoryContext: a new context for the value), reflecting the
 * events up to scanned.  If make() throws, h is as it was.
 */
template <typename Make>
void own_value(Held &h, Make make, uint64_t scanned) {
  MemoryContext context = value_context();
  PartedValue value;
  try {
    value = in_context(context, make);
  } catch (...) {
    pg_call([&] { MemoryContextDelete(context); });
    throw;
  }
  held_share_detach(h.shared);
  h.shared = -1;
  h.context = context;
  h.value = value;
  h.scanned = scanned;
}

/*
 * A shared value that row level security now applies to: this session
 * loads a value of its own, as itself, which the client gets whole.
 */
Reply unshare(Held &h) {
  Jsonb *whole = load_value(h.relid, h.assocs, h.filter);
  own_value(
      h, [&] { return split_value(whole); }, value_seq(whole));
  h.version++;
  return Reply{envelope(h.version, h.scanned, replace_all(h.value), {},
                        std::string("Row level security applies: the value is no longer shared.")),
               true};
}

/*
 * A shared value this session goes on with alone: a copy of it becomes its
 * own.  For a session whose transaction wrote or holds a snapshot (it may
 * not apply events to a shared value: it reads what other sessions
 * cannot), that waited too long for another's turn, or when shared memory
 * ran out.  If other sessions moved the value on since this client's
 * version, the client gets the whole value (it is behind).
 */
void leave_shared(Held &h) {
  SharedSince now = held_share_since(h.shared, UINT64_MAX); /* the whole value */
  own_value(
      h,
      [&] {
        PartedValue copy;
        copy.head = keep(now.value.head, CurrentMemoryContext);
        for (Jsonb *p : now.value.parts) copy.parts.push_back(keep(p, CurrentMemoryContext));
        return copy;
      },
      now.scanned);
  h.version = static_cast<int64_t>(now.version - h.base);
}

/*
 * The turn (held_shared.hpp) to apply the events loaded since to the
 * shared value, if no other session has applied them: as changes_made_in
 * does for a value of one's own, with the patch published for all.  false
 * when shared memory ran out, or another session's turn took too long.
 */
bool apply_shared(const Held &h, uint64_t upto) {
  PartedValue before;
  uint64_t version = 0, scanned = 0;
  switch (held_share_turn(h.shared, upto, before, version, scanned)) {
    case SharedTurn::Current:
      return true;
    case SharedTurn::TimedOut:
      return false;
    case SharedTurn::Mine:
      break;
  }
  MemoryContext made_in = value_context();
  try {
    PartedValue current = before;
    std::optional<std::string> reloaded;
    std::vector<uint64_t> changed_by;
    TouchedRows touched;
    catch_up(h, current, made_in, scanned, reloaded, changed_by, touched, upto);
    Jsonb *ops = nullptr;
    if (!reloaded && current != before) {
      Diff diff(resolve_plan(h.relid, h.assocs));
      diff.parts(before.parts, current.parts, touched);
      if (diff.count() > 0)
        in_context(made_in, [&] {
          ops = jb::to_jsonb(diff.ops());
          rebalance(current, false); /* (the shared parts are not ours to free) */
        });
    }
    bool published = held_share_publish(h.shared, current, ops, reloaded ? &*reloaded : nullptr,
                                        changed_by, scanned);
    pg_call([&] { MemoryContextDelete(made_in); });
    return published;
  } catch (...) {
    held_share_abandon(h.shared);
    pg_call([&] { MemoryContextDelete(made_in); });
    throw;
  }
}

/*
 * changes() of a shared value: the events are applied once, by whichever
 * session comes first; each replies to its own client from the patches
 * published since its version (the whole value when the client is behind,
 * or the patches left the log).  nullopt: the session left the shared
 * value (leave_shared), and changes() goes on with its own.
 */
std::optional<Reply> shared_changes(Held &h, std::optional<int64_t> client_version) {
  const Plan &plan = resolve_plan(h.relid, h.assocs);
  if (row_security(plan)) return unshare(h);
  if (!reads_committed_now() || !apply_shared(h, loaded_seq())) {
    leave_shared(h);
    return std::nullopt;
  }
  bool behind = client_version && *client_version != h.version;
  SharedSince since = held_share_since(h.shared, behind ? UINT64_MAX : h.base + h.version);
  int64_t version = static_cast<int64_t>(since.version - h.base);
  bool changed = behind || version != h.version;
  jb::Node ops = jb::Node::array();
  if (changed) check_select_privileges(plan);
  if (since.whole) {
    ops = replace_all(since.value);
  } else {
    for (const Jsonb *patch : since.ops) {
      jb::View list(patch);
      if (list.size() > 0) ops.push(jb::Node::copy_range(list, 0, list.size()));
    }
  }
  /* A whole value after a reload since this session's last reply says why,
   * as a value of one's own does. */
  std::optional<std::string> reloaded;
  if (since.whole && since.reload_version > h.base + static_cast<uint64_t>(h.version))
    reloaded = since.reload_why;
  h.version = version;
  h.scanned = since.scanned;
  return Reply{envelope(version, since.scanned, std::move(ops), since.events, reloaded), changed};
}

/* ectosync.changes(name, version): see the header comment. */
Reply changes(const std::string &name, std::optional<int64_t> client_version) {
  Held &h = find_held(name);
  if (h.shared >= 0)
    if (std::optional<Reply> reply = shared_changes(h, client_version)) return *reply;
  /* New parts are made in a context of their own (see move_on). */
  MemoryContext made_in = value_context();
  try {
    return changes_made_in(h, client_version, made_in);
  } catch (...) {
    pg_call([&] { MemoryContextDelete(made_in); });
    throw;
  }
}

/*
 * ectosync.wait_changes(name, version, timeout_ms): changes() as soon as
 * the patch is not empty, or the empty one at the timeout.  The worker sets
 * this backend's latch when an event matches the value's interest, so the
 * wait wakes for this value's changes only: unlike LISTEN, for which
 * PostgreSQL wakes every listening backend of the database at every
 * notifying commit.
 */
Jsonb *wait_changes(const std::string &name, std::optional<int64_t> client_version,
                    int timeout_ms) {
  TimestampTz deadline = GetCurrentTimestamp() + (TimestampTz)timeout_ms * 1000;
  for (;;) {
    int entry = find_held(name).entry;
    /* The worker counts a match before it sets the latch; code under
     * changes() may reset the latch (a condition variable's sleep does),
     * so the count, not the latch alone, says whether to sleep. */
    uint64_t matched = entry >= 0 ? interest_notifications(entry) : 0;
    pg_call([] { ResetLatch(MyLatch); });
    Reply reply = changes(name, client_version);
    long remaining = (long)((deadline - GetCurrentTimestamp()) / 1000);
    if (reply.changed || remaining <= 0) return reply.envelope;
    if (entry >= 0 && interest_notifications(entry) != matched) continue;
    /* Without an interest entry nobody sets the latch: look again soon. */
    long nap = entry >= 0 ? remaining : std::min(remaining, 10L);
    pg_call([&] {
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, nap,
                      PG_WAIT_EXTENSION);
      CHECK_FOR_INTERRUPTS();
    });
  }
}

}  // namespace
}  // namespace ectosync

using namespace ectosync;

/* SQL: ectosync.hold(name text, tbl regclass, assocs jsonb, filter jsonb, listen boolean) RETURNS
 * jsonb */
extern "C" Datum ectosync_hold(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                    errmsg("ecto_sync: hold() needs a name and a table")));
  Oid relid = PG_GETARG_OID(1);
  Jsonb *assocs = PG_ARGISNULL(2) ? nullptr : PG_GETARG_JSONB_P(2);
  Jsonb *filter = PG_ARGISNULL(3) ? nullptr : PG_GETARG_JSONB_P(3);
  bool listen = PG_ARGISNULL(4) || PG_GETARG_BOOL(4);
  text *name = PG_GETARG_TEXT_PP(0);
  Jsonb *value = pg_entry([&] { return hold(text_string(name), relid, assocs, filter, listen); });
  PG_RETURN_JSONB_P(value);
}

/* SQL: ectosync.changes(name text, version bigint DEFAULT NULL) RETURNS jsonb */
extern "C" Datum ectosync_changes(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0))
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                    errmsg("ecto_sync: changes() needs the name of a held value")));
  std::optional<int64_t> version;
  if (!PG_ARGISNULL(1)) version = PG_GETARG_INT64(1);
  text *name = PG_GETARG_TEXT_PP(0);
  PG_RETURN_JSONB_P(pg_entry([&] { return changes(text_string(name), version).envelope; }));
}

/* SQL: ectosync.wait_changes(name text, version bigint, timeout_ms int DEFAULT 10000) RETURNS jsonb
 */
extern "C" Datum ectosync_wait_changes(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0))
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                    errmsg("ecto_sync: wait_changes() needs the name of a held value")));
  std::optional<int64_t> version;
  if (!PG_ARGISNULL(1)) version = PG_GETARG_INT64(1);
  int timeout_ms = PG_ARGISNULL(2) ? 10000 : PG_GETARG_INT32(2);
  if (timeout_ms < 0 || timeout_ms > 3600 * 1000)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("ecto_sync: wait_changes() timeout_ms must be between 0 and 3600000"),
                    errdetail("It was %d.", timeout_ms)));
  text *name = PG_GETARG_TEXT_PP(0);
  PG_RETURN_JSONB_P(pg_entry([&] { return wait_changes(text_string(name), version, timeout_ms); }));
}

/* SQL: ectosync.release(name text) RETURNS boolean: whether it was held */
extern "C" Datum ectosync_release(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0)) PG_RETURN_BOOL(false);
  text *name = PG_GETARG_TEXT_PP(0);
  bool found = pg_entry([&] {
    auto &values = held_values();
    auto it = values.find(text_string(name));
    if (it == values.end()) return false;
    forget(it->second);
    values.erase(it);
    return true;
  });
  PG_RETURN_BOOL(found);
}

/*
 * SQL: ectosync.held() RETURNS TABLE (name, tbl, assocs, filter, version,
 * seq, bytes, parts, channel, notifications, shared_by): this session's
 * held values; shared_by: the sessions holding the shared value (NULL:
 * this session's own copy).
 */
extern "C" Datum ectosync_held(PG_FUNCTION_ARGS) {
  ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
  InitMaterializedSRF(fcinfo, 0);
  pg_entry([&] {
    for (const auto &[name, h] : held_values()) {
      Datum values[11];
      bool nulls[11] = {};
      std::string channel = h.entry >= 0 ? interest_channel(h.entry, h.generation) : "";
      uint64_t notified = h.entry >= 0 ? interest_notifications(h.entry) : 0;
      size_t bytes = 0;
      int parts = 0, holders = 0;
      if (h.shared >= 0) {
        held_share_describe(h.shared, bytes, parts, holders);
      } else {
        bytes = value_bytes(h.value);
        parts = static_cast<int>(h.value.parts.size());
      }
      pg_call([&] {
        values[0] = PointerGetDatum(cstring_to_text_with_len(name.data(), (int)name.size()));
        values[1] = ObjectIdGetDatum(h.relid);
        values[2] = JsonbPGetDatum(h.assocs);
        nulls[3] = h.filter == nullptr;
        values[3] = h.filter ? JsonbPGetDatum(h.filter) : (Datum)0;
        values[4] = Int64GetDatum(h.version);
        values[5] = Int64GetDatum((int64)h.scanned);
        values[6] = Int64GetDatum((int64)bytes);
        values[7] = Int32GetDatum(parts);
        nulls[8] = h.entry < 0;
        values[8] = h.entry >= 0 ? CStringGetTextDatum(channel.c_str()) : (Datum)0;
        values[9] = Int64GetDatum((int64)notified);
        nulls[10] = h.shared < 0;
        values[10] = Int32GetDatum(holders);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
      });
    }
  });
  return (Datum)0;
}

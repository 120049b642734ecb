/*
 * changes.cpp: hold(), changes() and wait_changes() of a value of the
 * session's own: events applied to its parts, the JSON Patch to the client,
 * the held value moved on (held.cpp's header comment).
 */
#include "value/catalog.hpp"
#include "value/diff.hpp"
#include "held/held_shared.hpp"
#include "core/interest.hpp"
#include "value/keys.hpp"
#include "pg/pg_boundary.hpp"
#include "settings.hpp"
#include "shmem/shmem.hpp"
#include "value/sync.hpp"
#include "held/held_internal.hpp"
#include "capture/xact_buffer.hpp"

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
#include "utils/inval.h"
#include "storage/sinval.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rls.h"
#include "storage/ipc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
#include "utils/tuplestore.h"
}

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>

namespace ectosync {

/*
 * ectosync.hold(name, tbl, assocs, filter, listen): load and keep; with
 * listen, LISTEN to the value's channel (or its tables' channels when no
 * interest entry is free).  A notification to itself, delivered when
 * this transaction commits, makes the client ask for changes once: events
 * notified before its LISTEN took effect are then covered.
 */
Jsonb *hold(const std::string &name, Oid relid, Jsonb *assocs, Jsonb *filter, bool listen) {
  refuse_transaction_snapshot("hold");
  const Plan &plan = resolve_plan(relid, assocs);
  refuse_own_changes(plan, "hold");
  /* The spec as values carry it, its tables' names qualified: a later call
   * under another search_path reads the tables the value was held for,
   * not a temporary table of the same name (whose rows a shared value
   * would publish to every session that holds it). */
  assocs = pg_call([&] {
    return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(plan.spec.c_str())));
  });
  /* The filter as values carry it, for good: its interest keys are then the
   * texts events carry (a uuid given in capitals is not), and a reload
   * reads what the value was held for. */
  if (filter) {
    std::string normal = normalized_filter(plan.root->table, filter);
    filter = pg_call([&] {
      return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(normal.c_str())));
    });
  }
  int shared = -1;
  uint64_t base = 0;
  /* Until the name is stored, a shared value attached is ours to detach. */
  struct Unnamed {
    ~Unnamed() { held_share_detach(std::exchange(shared_unnamed, -1)); }
  } unnamed;
  Jsonb *value = may_share(plan) ? share_value(plan, assocs, filter, shared, base) : nullptr;
  if (!value) value = load_value(plan, filter);
  auto &values = held_values();
  HeldName key{GetUserId(), name};
  auto it = values.find(key);
  if (it != values.end()) {
    forget(it->second);
    values.erase(it);
  }
  Held h;
  h.relid = relid;
  h.role = GetUserId();
  h.tables = plan.tables();
  h.homes = table_homes(h.tables);
  h.rls = row_security(plan);
  h.settings = kept_settings(); /* (a shared value's too: it may be unshared) */
  h.listening = listen;
  h.serial = note_hold(key);
  h.shared = shared;
  h.base = base;
  /* (what may throw is done: what follows allocates only, and goes with
   * its context or is kept) */
  OwnedContext context(shared < 0 ? value_context() : nullptr);
  if (shared < 0) {
    h.value = in_context(context.get(), [&] { return split_value(value); });
    h.scanned = value_seq(value);
  }
  h.assocs = keep(assocs);
  h.filter = keep(filter);
  h.context = context.release();
  /* Stored first: release() gives back what it took if a step fails. */
  Held &stored = values[key] = h;
  shared_unnamed = -1;
  attach_entry(stored, listen);
  stored.published = shared < 0 && stored.entry >= 0;
  if (shared >= 0)
    publish_shared_interest(stored, plan, base);
  else
    publish_interest(stored, plan, stored.value);
  if (listen && stored.entry >= 0) {
    /* The value's own channel. */
    std::string own = interest_channel(stored.entry, stored.generation);
    pg_call([&] {
      Async_Listen(own.c_str());
      Async_Notify(own.c_str(), "{}");
    });
  } else {
    /* Without an entry: its tables' channels and one of this session's. */
    listen_again(stored, plan);
  }
  return value;
}

/*
 * A value without an interest entry, whose changes the worker can tell
 * nobody of by name: LISTENs to own and to the channels the worker
 * notifies of changes to plan's tables (each table's, and that of RELOAD
 * markers for every table: relid 0, queued when too many tables need one
 * at once; table channels are shared with other clients: nothing but
 * event payloads goes there); any notification means: ask for changes.
 * Notifies own at commit, so that the client looks once when the LISTENs
 * take effect.
 */
void listen_to_tables(const Plan &plan, const std::string &own) {
  std::vector<std::string> channels{own, channel_name(0)};
  for (uint32_t t : plan.tables()) channels.push_back(channel_name(t));
  for (const std::string &channel : channels) pg_call([&] { Async_Listen(channel.c_str()); });
  pg_call([&] { Async_Notify(own.c_str(), "{}"); });
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
 * The value loaded again whole, in the current context, for the reason
 * why.  The parts are copies: the loaded jsonb goes (the current context
 * becomes the value's, which would keep it twice).
 */
static void load_again(const Held &h, const Plan &plan, PartedValue &value, uint64_t &scanned,
                       std::optional<std::string> &reloaded, TouchedRows &touched,
                       std::string why) {
  Jsonb *whole = load_value(plan, h.filter);
  value = split_value(whole);
  touched.clear(); /* (a reloaded value is sent whole) */
  scanned = value_seq(whole);
  pg_call([&] { pfree(whole); });
  reloaded = std::move(why);
}

/*
 * The events loaded after scanned applied to value, its new parts written
 * in made_in (ZE001: loaded again there; then reloaded says why).
 * Advances scanned.  interest: an entry whose interest is value's as given
 * (a shared value's, shared_interest_at()); a value of h's own finds its
 * entry itself.
 */
void catch_up(const Held &h, const Plan &plan, PartedValue &value, MemoryContext made_in,
              uint64_t &scanned, std::optional<std::string> &reloaded,
              std::vector<uint64_t> &changed_by, TouchedRows &touched, uint64_t upto,
              int interest) {
  if (upto <= scanned) return;
  in_context(made_in, [&] {
    try {
      /* The value's interest says which events may change it as it was
       * published: the others cost no patching (until one changed it),
       * and are not among the events that changed it.  (Rows are read as
       * they are now: an event of a row that has moved into the value
       * since would seem to have changed it.) */
      std::function<bool(const Event &)> may_concern;
      /* (Not under row level security: a row may become visible to the
       * caller by a change its interest does not name.) */
      if (h.entry >= 0 && h.shared < 0 && h.published && value == h.value && !h.rls)
        interest = h.entry;
      uint64_t from = scanned;
      if (interest >= 0) {
        may_concern = [interest](const Event &ev) { return interest_entry_matches(interest, ev); };
        /* The events before the first that the worker matched to the
         * interest cannot change the value: not read at all (when the
         * worker matched each of them against this interest, and none
         * is a marker that it matches with no interest). */
        if (scanned >= trust_from(h) && unmatched_seq() <= scanned)
          from = std::max(scanned, std::min(upto, interest_unmatched_until(interest, scanned) - 1));
      }
      sync_parts(plan, value, from, upto, &changed_by, &touched, may_concern);
      scanned = upto;
    } catch (const Error &e) {
      if (e.sqlstate != ERRCODE_ECTOSYNC_RELOAD) throw;
      load_again(h, plan, value, scanned, reloaded, touched, e.detail);
    }
  });
}

/*
 * A value without an interest entry LISTENs to its tables' channels and to
 * one of the session's (hold(), listen_changes()): after its tables moved,
 * to the new ones', and after a LISTEN of them rolled back, again.
 */
void listen_again(const Held &h, const Plan &plan) {
  if (h.entry >= 0) return;
  if (h.listening)
    listen_to_tables(plan, "ectosync_session_" + std::to_string(MyProcPid));
  else if (interest_session_listens())
    listen_to_tables(plan, interest_listen_session());
}

namespace {

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
  } catch (const PgError &) {
    throw; /* PostgreSQL's errors abort the transaction */
  } catch (...) {
  }
}

/*
 * changes() with what it makes written in made_in (see move_on), and the
 * plan of the value's shape, resolved once for the call.
 */
Reply changes_made_in(Held &h, const Plan &plan, std::optional<int64_t> client_version,
                      MemoryContext made_in) {
  /* Row level security started or stopped applying to the holder on a
   * table of the value (roles changed, role_change.cpp, or a table's
   * owner): the rows it may see are others, whatever the events say and
   * whether a marker was logged yet.  h.rls (which catch_up() and
   * wait_changes() ask) moves on with the value only: a call that fails
   * leaves the change to the next one; until then it trusts no interest
   * under row level security as of either. */
  uint64_t invalidations = SharedInvalidMessageCounter;
  bool secured = row_security(plan);
  struct KeepRls {
    Held &h;
    bool was;
    ~KeepRls() { h.rls = was; }
  } keep{h, h.rls};
  h.rls = h.rls || secured;
  /* Read under the settings it was held under, should row level security
   * apply (a tenant's, in a hub whose users share one role), or start to
   * during the read: held_settings.cpp. */
  AsHeldSettings as_held(h.settings);
  uint64_t scanned = h.scanned;
  std::optional<std::string> reloaded; /* why */
  std::vector<uint64_t> changed_by;
  PartedValue current = h.value;
  TouchedRows touched;
  /* Its assocs lead to other tables than it was held for, which
   * held_plan() accepts (the same owners and schemas: a foreign key made
   * again, a table renamed away and another given its name).  The value
   * holds the old tables' rows, and no marker need reach it (the renamed
   * table's names the old oid): it is loaded again, which checks that the
   * new tables are captured. */
  std::vector<uint32_t> tables = plan.tables();
  bool moved = tables != h.tables;
  std::vector<TableHome> homes = moved ? table_homes(tables) : h.homes;
  if (moved)
    in_context(made_in, [&] {
      load_again(h, plan, current, scanned, reloaded, touched,
                 "Its assocs lead to other tables than when it was loaded (a table renamed, or "
                 "a foreign key made again).");
    });
  else
    catch_up(h, plan, current, made_in, scanned, reloaded, changed_by, touched);
  /* Asked again after the events: a role marker read among them accepted
   * the invalidation messages of its change, and is used up (wait_changes()
   * reads a value under row level security again only for a later event).
   * Compared after them: a marker's reason says more, as for a policy. */
  if (SharedInvalidMessageCounter != invalidations) secured = row_security(plan);
  if (secured != keep.was && !reloaded)
    in_context(made_in, [&] {
      load_again(h, plan, current, scanned, reloaded, touched,
                 std::string("Row level security ") +
                     (secured ? "now applies" : "no longer applies") +
                     " to the role that holds the value.");
    });
  /* A changed value has a new interest, and so has one whose entry is not
   * known to hold its interest (a call that failed or gave up after
   * publishing).  Events the worker matched against the old one while we
   * worked are caught up with here; if it keeps loading more, a
   * notification to ourselves brings the client back. */
  PartedValue published = h.value;
  bool fresh = h.published; /* the entry holds the interest of `published` */
  for (int round = 0; (current != published || !fresh) && h.entry >= 0; round++) {
    if (round == 4) {
      /* (wait_changes() callers come back anyway, and start by catching up) */
      recall_listener(h);
      break;
    }
    /* (the entry no longer says which events may change h.value: should
     * this call fail, the next must not take its word for them) */
    h.published = false;
    publish_interest(h, plan, current);
    published = current;
    fresh = true;
    catch_up(h, plan, current, made_in, scanned, reloaded, changed_by, touched);
  }
  bool behind = h.whole_next || (client_version && *client_version != h.version);
  int64_t version = h.version;
  Reply result;
  if (reloaded) {
    version++;
    result = Reply{envelope(version, scanned, replace_all(current), changed_by, reloaded), true};
  } else {
    Diff diff(plan);
    if (current != h.value) diff.parts(h.value.parts, current.parts, touched);
    bool changed = diff.count() > 0 || h.whole_next; /* (a new version: not the client's) */
    if (changed) version++;
    jb::Node ops = behind ? replace_all(current) : std::move(diff.ops());
    result = Reply{envelope(version, scanned, std::move(ops), changed_by, std::nullopt),
                   behind || changed};
  }
  /* (noted before anything moves: a note whose reply fails costs a whole
   * value, a move not noted would cost the client what it missed) */
  if (result.changed) note_reply(h);
  /* (before the value moves: should it fail, the value is as it was; should
   * the transaction roll back, settle_rollbacks() listens again, and so
   * does the whole reply that follows) */
  if (moved || h.whole_next) listen_again(h, plan);
  /* Only now, with the reply made, does the held value move on; its
   * interest is the one published if the loop above caught up. */
  bool published_current = current == published && fresh;
  move_on(h, current, reloaded.has_value(), made_in);
  h.tables = std::move(tables);
  h.homes = std::move(homes);
  h.published = published_current;
  h.scanned = scanned;
  h.version = version;
  h.whole_next = false;
  keep.was = secured;
  return result;
}

}  // namespace

/* ectosync.changes(name, version): see the header comment. */
Reply changes(const std::string &name, std::optional<int64_t> client_version) {
  refuse_transaction_snapshot("changes");
  return changes(find_held(name), client_version);
}

/* changes() of a value found already, for the role that holds it. */
Reply changes(Held &h, std::optional<int64_t> client_version) {
  /* (a wait_changes() call is one statement: roles and owners changed since
   * it began are in invalidation messages that no lock taken again reads) */
  pg_call([] { AcceptInvalidationMessages(); });
  if (xact_wrote()) refuse_own_changes(held_plan(h), "changes");
  if (h.shared >= 0)
    if (std::optional<Reply> reply = shared_changes(h, client_version)) {
      recall_if_untrusted(h);
      return *reply;
    }
  /* New parts are made in a context of their own (see move_on). */
  OwnedContext made_in(value_context());
  Reply reply = changes_made_in(h, held_plan(h), client_version, made_in.get());
  made_in.release(); /* changes_made_in() kept it, or deleted it */
  recall_if_untrusted(h);
  return reply;
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
  /* Each pass in a context of its own, reset when it found nothing (see
   * wait_any()); the one that returns keeps it, a child of the caller's. */
  MemoryContext caller = CurrentMemoryContext;
  OwnedContext passes(pg_call([&] {
    return AllocSetContextCreate(caller, "ecto_sync wait pass", ALLOCSET_DEFAULT_SIZES);
  }));
  for (;;) {
    pg_call([&] { MemoryContextReset(passes.get()); });
    int entry = find_held(name).entry;
    /* The worker counts a match before it sets the latch; code under
     * changes() may reset the latch (a condition variable's sleep does),
     * so the count, not the latch alone, says whether to sleep. */
    uint64_t matched = entry >= 0 ? interest_notifications(entry) : 0;
    uint64_t loaded = pg_call([] { return loaded_seq(); });
    pg_call([] { ResetLatch(MyLatch); });
    Reply reply = in_context(passes.get(), [&] { return changes(name, client_version); });
    long remaining = (long)((deadline - GetCurrentTimestamp()) / 1000);
    if (reply.changed || remaining <= 0) {
      passes.release(); /* (the reply is in it) */
      return reply.envelope;
    }
    if (entry >= 0 && interest_notifications(entry) != matched) continue;
    /* A batch counted before matched was read, and loaded only after
     * changes() looked: its wake may have gone to a sleep under changes()
     * (another session's turn of a shared value). */
    if (pg_call([] { return loaded_seq(); }) != loaded) continue;
    /* Without an interest entry nobody sets the latch, and events before a
     * new interest was published may have been matched against the old
     * one: look again soon. */
    long nap = trusted(find_held(name)) ? remaining : std::min(remaining, 10L);
    pg_call([&] {
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, nap,
                      PG_WAIT_EXTENSION);
      CHECK_FOR_INTERRUPTS();
    });
  }
}

}  // namespace ectosync

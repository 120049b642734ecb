/*
 * wait_any.cpp: ectosync.wait_changes(timeout_ms), one wait for every value
 * of the session (held.cpp's header comment).
 *
 * A session may hold thousands of values.  Looking at each of them at
 * every wake cost the session as much as it held, however few of them an
 * event concerned.  A pass looks instead at:
 *   - the values of the entries the worker queued for this backend since
 *     the last pass (it counted a match on them: interest_take_moved());
 *   - the restless values: those a pass reads whether their entry moved or
 *     not (no entry, row level security, an interest not yet published or
 *     trusted, a match or a marker beyond what they reflect);
 * and at every value when it cannot tell which moved: the queue
 * overflowed, the worker loaded a marker that it does not match, or a call
 * other than this one held, released or read a value of the session.
 *
 * A quiet value of its own (one that a pass since the session's values
 * last changed looked at, and found not restless) reflects the events up
 * to the loaded seq of the last pass that did not find its entry queued (the
 * worker counts a match before it marks the batch loaded, and queues the
 * entry when it counts).  Its seq moves on to that when it is next looked
 * at, not at each pass, so that its events need not be read again; and
 * a pass looks at all of them at least once every event_log_size / 8
 * events, so that its seq stays within the event log.
 */
#include "capture/xact_buffer.hpp"
#include "held/held_internal.hpp"
#include "held/held_shared.hpp"
#include "pg/pg_boundary.hpp"
#include "settings.hpp"
#include "shmem/shmem.hpp"
#include "value/catalog.hpp"
#include "value/sync.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

#include <algorithm>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace ectosync {

namespace {

using Item = HeldValues::value_type;

/* The session's values by interest entry (-1: none), and the restless ones. */
struct WaitIndex {
  uint64_t layout = UINT64_MAX;  /* held_layout() when the groups were made */
  Oid role = InvalidOid;         /* and the current role: only its values are in them */
  uint64_t touches = UINT64_MAX; /* held_touches() after the last pass */
  uint64_t unmatched = 0;        /* unmatched_seq() at the last pass */
  uint64_t quiet_loaded = 0;     /* loaded_seq() at the last pass: see the header */
  uint64_t swept = 0;            /* loaded_seq() at the last pass that looked at all */
  std::unordered_map<int, std::vector<Item *>> groups;
  std::unordered_set<int> restless; /* entries with a restless name */
};

WaitIndex &wait_index() {
  static auto *index = new WaitIndex();
  return *index;
}

void regroup(WaitIndex &ix) {
  ix.groups.clear();
  ix.restless.clear();
  /* (another role's values, after SET ROLE, are not this caller's to read,
   * nor to learn of) */
  for (Item &item : own_values()) ix.groups[item.second.entry].push_back(&item);
  ix.layout = held_layout();
  ix.role = GetUserId();
  ix.touches = UINT64_MAX; /* (none is known to be quiet: the next pass looks at all) */
}

/*
 * Whether wait_changes() may take a value to reflect every event up to
 * loaded without reading them: no event after the value's seq matched the
 * interest it published (the worker counts matches before it marks a batch
 * loaded), none of them is one the worker does not match first, and the
 * events before it published are read already.  Its seq moves on then.
 * (Not for shared values, whose seq is the shared value's; not under row level
 * security, where a row may become visible by a change its interest does
 * not name.)
 */
bool passes_over(Held &h, uint64_t loaded, uint64_t unmatched) {
  if (h.entry < 0 || h.shared >= 0 || !h.published || h.rls || h.whole_next) return false;
  if (h.scanned < h.trust_from || unmatched > h.scanned) return false;
  if (interest_matched_seq(h.entry) > h.scanned) return false;
  h.scanned = std::max(h.scanned, loaded);
  return true;
}

/*
 * Whether wait_changes() must read the events of a value that it did not
 * pass over: a value of its own with a complete interest, always (an
 * event matched it, or some may have been matched against an older
 * interest, or not at all); a shared value, when its entry counted one,
 * matched an event after the shared value's seq (counted before it was
 * loaded: a read in between missed it), the worker queued a marker it
 * does not match, or it has not read every event up to its interest's
 * publishing; any other (no entry, row level security), whenever the
 * worker loaded events it has not read.  Any, when its next reply is the
 * whole value (a reply rolled back: rollback.cpp).
 */
bool needs_reading(const Held &h, uint64_t matched, uint64_t loaded, uint64_t unmatched) {
  if (h.whole_next || (h.entry >= 0 && h.shared < 0 && h.published && !h.rls)) return true;
  if (h.entry >= 0 && h.shared >= 0)
    return matched != h.seen || unmatched > h.scanned || h.scanned < trust_from(h) ||
           interest_matched_seq(h.entry) > h.scanned;
  return loaded > h.scanned;
}

/*
 * Whether a pass must look at h even when its entry's count did not move:
 * what needs_reading() and passes_over() ask, with the count as last seen.
 */
bool restless(const Held &h, uint64_t unmatched) {
  if (h.entry < 0 || h.rls || h.whole_next || !trusted(h) || (h.shared < 0 && !h.published))
    return true;
  return unmatched > h.scanned || interest_matched_seq(h.entry) > h.scanned;
}

/* What one pass found: the rows to return, and whether a value it looked at
 * is not trusted (the wait must look again soon). */
struct Pass {
  std::vector<WaitRow> &out;
  uint64_t loaded, unmatched;
  bool untrusted = false;
  bool retry = false; /* a failing value was passed over: look again within a second */
};

/*
 * Looks at one value: reads its events when it needs to, and adds its row
 * when its patch is not empty or its changes failed.  One value's failure
 * (its role lost SELECT on a table of it) is its row alone: ecto_sync's own
 * errors leave the transaction sound, and the value as it was.
 * PostgreSQL's errors end the call, and leave the count unseen.
 */
void look_at(Item &item, Pass &pass) {
  const std::string &name = item.first.name;
  Held &h = item.second;
  uint64_t matched = h.entry >= 0 ? interest_notifications(h.entry) : 0;
  /* A value whose changes failed (no watch captures it any more, its role
   * may no longer read a table of it) said so in its row: until the
   * worker loads another event, a pass would answer that row again at
   * once, and a client that keeps the value would spin. */
  bool failed = h.failing && pass.loaded == h.failed_at &&
                GetCurrentTimestamp() < h.failed_time + USECS_PER_SEC;
  if (failed) pass.retry = true;
  bool read = !failed && !passes_over(h, pass.loaded, pass.unmatched) &&
              needs_reading(h, matched, pass.loaded, pass.unmatched);
  /* (a count seen, read or not: a value that is not read must not make
   * every pass look again) */
  uint64_t seen = std::exchange(h.seen, matched);
  if (read) {
    int64_t since = h.version;
    try {
      Reply reply = h.raised ? in_subtransaction([&] { return changes(h, std::nullopt); })
                             : changes(h, std::nullopt);
      h.failing = h.raised = false;
      if (reply.changed) pass.out.push_back(WaitRow{name, reply.envelope, {}, 0, since, 0});
    } catch (const Error &e) {
      h.failing = true;
      h.failed_at = pass.loaded;
      h.failed_time = GetCurrentTimestamp();
      std::string why = e.message + (e.detail.empty() ? "" : ": " + e.detail);
      pass.out.push_back(WaitRow{name, nullptr, why, h.version, since, h.scanned});
    } catch (const PgError &) {
      h.seen = seen;
      h.raised = true;
      throw;
    } catch (...) {
      h.seen = seen;
      throw;
    }
  }
  pass.untrusted = pass.untrusted || !trusted(h);
}

/*
 * Looks at the names of one entry.  When it was quiet, its values of their
 * own move on first (see the header).
 */
void look_at(WaitIndex &ix, int entry, Pass &pass) {
  auto group = ix.groups.find(entry);
  if (group == ix.groups.end()) return; /* (an entry freed since) */
  bool quiet = !ix.restless.count(entry);
  for (Item *item : group->second) {
    Held &h = item->second;
    if (quiet && h.shared < 0) h.scanned = std::max(h.scanned, ix.quiet_loaded);
    look_at(*item, pass);
  }
  const std::vector<Item *> &names = group->second;
  if (entry < 0 || std::any_of(names.begin(), names.end(),
                               [&](Item *i) { return restless(i->second, pass.unmatched); }))
    ix.restless.insert(entry);
  else
    ix.restless.erase(entry);
}

/*
 * Whether entry's shared value is being moved on by another session's
 * turn now (held_share_busy()).  Sessions that hold the same values look
 * at them in the same order: without this, each waited for the first
 * session's turns one after another while both cores sat idle, and the
 * last reply of a tag rename came after the sum of all its values' turns.
 */
bool turn_elsewhere(const WaitIndex &ix, int entry, uint64_t loaded) {
  auto group = ix.groups.find(entry);
  if (entry < 0 || group == ix.groups.end()) return false;
  for (const Item *item : group->second)
    if (item->second.shared >= 0) return held_share_busy(item->second.shared, loaded);
  return false;
}

/* One pass over the values that may have moved (all of them when it cannot tell). */
void look_at_moved(Pass &pass) {
  WaitIndex &ix = wait_index();
  std::vector<int> entries;
  bool known = interest_take_moved(entries);
  if (ix.layout != held_layout() || ix.role != GetUserId()) regroup(ix);
  /* (and now and then anyway, so that a quiet value's seq stays within the
   * event log: changes() reads on from it) */
  bool lags = pass.loaded - ix.swept > (uint64_t)settings.event_log_size / 8;
  if (!known || lags || ix.touches != held_touches() || ix.unmatched != pass.unmatched) {
    ix.swept = pass.loaded;
    entries.clear();
    for (const auto &[entry, names] : ix.groups) {
      ix.restless.insert(entry); /* (what it was does not count) */
      entries.push_back(entry);
    }
  } else {
    /* the restless ones, and the quiet ones that moved, each once */
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [&](int e) { return ix.restless.count(e) > 0; }),
                  entries.end());
    std::sort(entries.begin(), entries.end());
    entries.erase(std::unique(entries.begin(), entries.end()), entries.end());
    entries.insert(entries.end(), ix.restless.begin(), ix.restless.end());
  }
  /* (those another session moves on now, last) */
  std::vector<int> later;
  try {
    for (int entry : entries) {
      if (turn_elsewhere(ix, entry, pass.loaded))
        later.push_back(entry);
      else
        look_at(ix, entry, pass);
    }
    for (int entry : later) look_at(ix, entry, pass);
  } catch (...) {
    /* A PostgreSQL error ended the pass (a lock_timeout, a cancel): the
     * entries it took out of the queue and did not look at are no longer
     * queued.  The next pass looks at every value. */
    ix.touches = UINT64_MAX;
    throw;
  }
  ix.touches = held_touches();
  ix.unmatched = pass.unmatched;
  ix.quiet_loaded = pass.loaded;
}

}  // namespace

/*
 * ectosync.wait_changes(timeout_ms): the values of the session that changed,
 * as soon as one did.  One backend can hold thousands of values and wait
 * for all of them: the worker sets the latch and queues the entry of each
 * value an event concerns, so a wake looks only at the values it queued
 * (and at the restless ones: see the header).
 */
std::vector<WaitRow> wait_any(int timeout_ms) {
  /* (the call's, not each value's) */
  refuse_transaction_snapshot("wait_changes");
  if (xact_wrote())
    for (auto &[key, h] : own_values()) {
      const Plan *plan = nullptr;
      try {
        plan = &held_plan(h);
      } catch (const Error &) {
        continue; /* (its own row says why) */
      }
      refuse_own_changes(*plan, "wait_changes");
    }
  TimestampTz deadline = GetCurrentTimestamp() + (TimestampTz)timeout_ms * 1000;
  std::vector<WaitRow> out;
  EventMemoScope memo; /* the values read the same events */
  /* Each pass allocates in a context of its own, reset when it found
   * nothing: a long wait woken often (restless values, every loaded batch)
   * would otherwise grow the call's memory at each pass.  The pass that
   * returns rows keeps it, a child of the caller's. */
  MemoryContext caller = CurrentMemoryContext;
  OwnedContext passes(pg_call([&] {
    return AllocSetContextCreate(caller, "ecto_sync wait pass", ALLOCSET_DEFAULT_SIZES);
  }));
  for (;;) {
    pg_call([&] { MemoryContextReset(passes.get()); });
    pg_call([] { ResetLatch(MyLatch); });
    /* The names of a shared value at one version get one patch.  (A name
     * answered from the memo may miss an event matched since: the entry
     * recorded its seq, and needs_reading() reads it again.) */
    SharedReplyMemoScope replies;
    /* Read before the entries: the worker counts a batch in the entries it
     * matches before it marks the batch loaded. */
    Pass pass{out, loaded_seq(), unmatched_seq()};
    in_context(passes.get(), [&] { look_at_moved(pass); });
    long remaining = (long)((deadline - GetCurrentTimestamp()) / 1000);
    if (!out.empty() || remaining <= 0) {
      passes.release(); /* (the rows' replies are in it) */
      return out;
    }
    /* Code under changes() may reset the latch (a condition variable's
     * sleep does): the queue, not the latch alone, says whether to sleep. */
    if (interest_moved_pending()) continue;
    /* (nor whether the restless ones, which the worker need not queue,
     * have events loaded since the pass began) */
    if (!wait_index().restless.empty() && loaded_seq() != pass.loaded) continue;
    long nap = pass.untrusted ? std::min(remaining, 10L)
               : pass.retry   ? std::min(remaining, 1000L)
                              : remaining;
    pg_call([&] {
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, nap,
                      PG_WAIT_EXTENSION);
      CHECK_FOR_INTERRUPTS();
    });
  }
}

}  // namespace ectosync

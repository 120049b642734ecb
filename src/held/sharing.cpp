/*
 * sharing.cpp: the sharing policy (which values sessions share, attaching
 * to one), the turns that apply events to a shared value, and a session
 * going on with a value of its own (held.cpp's header comment, Sharing).
 */
#include "value/catalog.hpp"
#include "value/diff.hpp"
#include "held/held_shared.hpp"
#include "core/interest.hpp"
#include "value/keys.hpp"
#include "pg/pg_boundary.hpp"
#include "pg/spi.hpp"
#include "pg/sql_context.hpp"
#include "settings.hpp"
#include "shmem/shmem.hpp"
#include "value/sync.hpp"
#include "held/held_internal.hpp"

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
#include "storage/ipc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
#include "utils/tuplestore.h"
}

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <tuple>

namespace ectosync {

namespace {

/*
 * What shared values are matched by: the shape, the tables it resolved to
 * (its spec names them by name: after a schema renamed under one, the
 * same text names another table), the filter as values carry it (hold()
 * rendered it: "EST" or a uuid in capitals are written otherwise), the
 * part size they are cut by, and the role.  Sessions of other roles never
 * share a value: held().shared_by, and how soon a hold() returns, would
 * tell a role which filtered lists another role's sessions hold (which
 * user has which screen open).
 */
std::string share_key(const Plan &plan, const Jsonb *filter) {
  std::string tables;
  for (uint32_t t : plan.tables()) tables += std::to_string(t) + ",";
  return plan.spec + " " + tables + " " + (filter ? jsonb_text(filter) : "null") + " " +
         std::to_string(settings.held_part_bytes) + " role " + std::to_string(GetUserId());
}

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
 * A shared h goes on with a value of its own, which make() writes (in
 * CurrentMemoryContext: a new context for the value), reflecting the
 * events up to scanned.  If make() throws, h is as it was.
 */
template <typename Make>
void own_value(Held &h, const Plan &plan, Make make, uint64_t scanned) {
  OwnedContext context(value_context());
  PartedValue value = in_context(context.get(), make);
  bool own_entry = h.shares_entry; /* (the names of the shared value keep theirs) */
  if (own_entry) detach_entry(h);
  held_share_detach(h.shared);
  h.shared = -1;
  h.context = context.release();
  h.value = value;
  h.published = false;
  h.scanned = scanned;
  if (own_entry) attach_entry(h, false);
  /* (no entry was free: a session that listen_changes() hears of it so) */
  if (own_entry && h.entry < 0 && interest_session_listens())
    listen_to_tables(plan, interest_listen_session());
  /* Its entry had the interest of the shared value at some version: the
   * worker must now wake it for the rows it holds. */
  publish_interest(h, plan, h.value);
  h.published = h.entry >= 0;
}

/*
 * A shared value that row level security now applies to: this session
 * loads a value of its own, as itself, which the client gets whole.
 */
Reply unshare(Held &h, const Plan &plan) {
  note_reply(h); /* (before anything moves: changes_made_in()) */
  Jsonb *whole = [&] {
    AsHeldSettings as_held(h.settings); /* (its tenant's, not the caller's) */
    return load_value(plan, h.filter);
  }();
  own_value(
      h, plan, [&] { return split_value(whole); }, value_seq(whole));
  h.rls = true;         /* (read under it) */
  h.whole_next = false; /* (this reply is the whole value) */
  h.version++;
  return Reply{envelope(h.version, h.scanned, replace_all(h.value), {},
                        std::string("Row level security applies: the value is no longer shared.")),
               true};
}

/*
 * A shared value this session goes on with alone: a copy of it becomes its
 * own.  For a session whose transaction has an xid (it may read what the
 * others cannot: a schema change, a partition attached), that waited too
 * long for another's turn, or when shared memory ran out.  If other
 * sessions moved the value on since this client's version, the client gets
 * the whole value next, whatever version its caller names: it was sent
 * none of the patches between.
 */
void leave_shared(Held &h, const Plan &plan) {
  SharedSince now = held_share_since(h.shared, UINT64_MAX); /* the whole value */
  own_value(
      h, plan,
      [&] {
        PartedValue copy;
        copy.head = keep(now.value.head, CurrentMemoryContext);
        for (Jsonb *p : now.value.parts) copy.parts.push_back(keep(p, CurrentMemoryContext));
        return copy;
      },
      now.scanned);
  if (now.version - h.base != static_cast<uint64_t>(h.version)) h.whole_next = true;
}

}  // namespace

/*
 * Whether a value of plan may be shared (held_shared.hpp): no row level
 * security for this role on its tables, and a transaction that reads what
 * the others do.  (hold() refuses one that changed the value's rows; one
 * that changed a table's schema, or attached a partition, is seen only by
 * its xid.)
 */
bool may_share(const Plan &plan) {
  return held_sharing_enabled() && reads_committed_now() && !row_security(plan);
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
    case SharedTurn::Closed:
      return false;
    case SharedTurn::Mine:
      break;
  }
  try {
    OwnedContext made_in(value_context()); /* (in the try: the turn is ours to give up) */
    const Plan &plan = held_plan(h);       /* once for the turn */
    PartedValue current = before;
    std::optional<std::string> reloaded;
    std::vector<uint64_t> changed_by;
    TouchedRows touched;
    catch_up(h, plan, current, made_in.get(), scanned, reloaded, changed_by, touched, upto,
             shared_interest_at(h, version));
    Jsonb *ops = nullptr;
    if (!reloaded && current != before) {
      Diff diff(plan);
      diff.parts(before.parts, current.parts, touched);
      if (diff.count() > 0)
        in_context(made_in.get(), [&] {
          ops = jb::to_jsonb(diff.ops());
          rebalance(current, false); /* (the shared parts are not ours to free) */
        });
    }
    return held_share_publish(h.shared, current, ops, reloaded ? &*reloaded : nullptr, changed_by,
                              scanned);
  } catch (...) {
    held_share_abandon(h.shared);
    throw;
  }
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
Jsonb *share_value(const Plan &plan, Jsonb *assocs, Jsonb *filter, int &shared, uint64_t &base) {
  static bool exit_hook = false;
  if (!exit_hook) {
    pg_call([] { before_shmem_exit(detach_shared_at_exit, 0); });
    exit_hook = true;
  }
  check_select_privileges(plan);
  uint32_t relid = plan.root->table.relid;
  std::string key = share_key(plan, filter);
  shared_unnamed = shared = held_share_find(relid, key);
  if (shared < 0) {
    Jsonb *loaded = load_value(plan, filter);
    MemoryContext scratch = value_context();
    try {
      PartedValue parts = in_context(scratch, [&] { return split_value(loaded); });
      shared = held_share_create(relid, key, parts, value_seq(loaded));
      shared_unnamed = shared;
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
    probe.tables = plan.tables();
    probe.homes = table_homes(probe.tables);
    probe.filter = filter;
    probe.shared = shared;
    /* Every event committed before the call, once the worker has loaded
     * it (the cache may hold an older version of its row until then): the
     * value shows what a load would.  A worker far behind: load instead. */
    if (!worker_caught_up(1000) || !apply_shared(probe, loaded_seq())) {
      held_share_detach(shared);
      shared_unnamed = shared = -1;
      return load_value(plan, filter);
    }
    SharedSince now = held_share_since(shared, UINT64_MAX); /* the whole value */
    base = now.version;
    return join_value(now.value);
  } catch (...) {
    held_share_detach(shared);
    shared_unnamed = -1;
    throw;
  }
}

namespace {

struct MemoReply {
  Reply reply;
  int64_t version;
  uint64_t scanned;
};
using ReplyKey = std::tuple<int, Oid, uint64_t, uint64_t>; /* slot, role, base, from */
std::map<ReplyKey, MemoReply> *reply_memo = nullptr;

}  // namespace

SharedReplyMemoScope::SharedReplyMemoScope() {
  reply_memo = new std::map<ReplyKey, MemoReply>();
}

SharedReplyMemoScope::~SharedReplyMemoScope() {
  delete reply_memo;
  reply_memo = nullptr;
}

/*
 * changes() of a shared value: the events are applied once, by whichever
 * session comes first; each replies to its own client from the patches
 * published since its version (the whole value when the client is behind,
 * or the patches left the log).  nullopt: the session left the shared
 * value (leave_shared), and changes() goes on with its own.
 */
std::optional<Reply> shared_changes(Held &h, std::optional<int64_t> client_version) {
  /* (a name with an entry of its own publishes the interest in it itself) */
  bool memo = reply_memo && !client_version && h.shares_entry && !h.whole_next;
  ReplyKey key{h.shared, h.role, h.base, h.base + static_cast<uint64_t>(h.version)};
  if (memo) {
    auto it = reply_memo->find(key);
    if (it != reply_memo->end()) {
      if (it->second.reply.changed) note_reply(h);
      h.version = it->second.version;
      h.scanned = it->second.scanned;
      return it->second.reply;
    }
  }
  const Plan &plan = held_plan(h);
  if (row_security(plan)) return unshare(h, plan);
  if (!reads_committed_now() || !apply_shared(h, loaded_seq())) {
    leave_shared(h, plan);
    return std::nullopt;
  }
  bool behind = h.whole_next || (client_version && *client_version != h.version);
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
  /* The rows changed: the interest follows them (first: if it fails, the
   * name is where it was, and the next call replies again). */
  if (changed) note_reply(h); /* (before anything moves: changes_made_in()) */
  if (changed) publish_shared_interest(h, plan, since.version);
  h.version = version;
  h.scanned = since.scanned;
  h.whole_next = false;
  Reply reply{envelope(version, since.scanned, std::move(ops), since.events, reloaded), changed};
  if (memo) (*reply_memo)[key] = MemoReply{reply, version, since.scanned};
  return reply;
}

}  // namespace ectosync

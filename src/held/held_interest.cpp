/*
 * held_interest.cpp: the interest of a held value (interest.hpp), built from
 * its rows and published for the worker to match events against.
 */
#include "value/catalog.hpp"
#include "value/diff.hpp"
#include "held/held_shared.hpp"
#include "core/interest.hpp"
#include "value/keys.hpp"
#include "value/patcher.hpp"
#include "pg/pg_boundary.hpp"
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
#include "storage/proc.h"
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
}

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace ectosync {

namespace {

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
        /* A linked target the list does not hold may enter by its own
         * change: it may come to match the list's where, or to sort
         * inside its window, or come to have the values that join rows
         * name (when they name other columns than its key). */
        const ListQuery &q = a.target->query;
        if (!q.where.empty() || q.windowed() || !same_columns(a.target_cols, a.target->table.pk))
          in_.add_wild(target);
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

/*
 * A full root window ordered by a column first: the events of rows that
 * sort after its last row can change nothing (interest.hpp's
 * InterestRange).  false when that cannot be said (the window is not
 * full, the last row's value is NULL, or the column's kind has no range):
 * every root event matters then.  The column's values reach the worker
 * when the watch() spec names the query (watch_needs.cpp).
 */
bool add_window_range(Interest &in, const PlanNode &root, const PartedValue &value) {
  const ListQuery &q = root.query;
  if (!q.limit || q.order.empty() || value.parts.empty()) return false;
  int64_t rows = 0;
  for (const Jsonb *part : value.parts) rows += jb::View(part).size();
  jb::View last_part(value.parts.back());
  if (rows == 0 || rows < *q.limit || last_part.size() == 0) return false;
  const OrderKey &k = q.order.front();
  std::optional<jb::Elem> v = jb::View(last_part.at(last_part.size() - 1)).get(k.column.name);
  if (!v || v->is_null()) return false;
  std::optional<std::string> text = elem_text(*v);
  return text && in.add_range(root.table.relid, k.column.attnum, k.column.kind, k.desc,
                              k.nulls_first, *text);
}

/* Whether node's subtree reads relid's rows (or join rows). */
bool reads_table(const PlanNode &node, uint32_t relid) {
  for (const Assoc &a : node.assocs)
    if ((a.join && a.join->relid == relid) || a.target->table.relid == relid ||
        reads_table(*a.target, relid))
      return true;
  return false;
}

/*
 * The root list's where as guards (interest.hpp's InterestGuard): a root
 * row outside it before and after a change can change nothing, unless the
 * root table is also read below the root (a belongs_to back to it holds
 * rows of its own).  Conditions a guard cannot be (in, or) are left out:
 * the interest then matches more.  The columns' values reach the worker
 * when the watch() spec names the query (watch_needs.cpp).
 */
void add_where_guards(Interest &in, const Plan &plan) {
  const PlanNode &root = *plan.root;
  if (root.query.where.empty() || reads_table(root, root.table.relid)) return;
  for (const Condition &c : root.query.where)
    if (c.op != CmpOp::Or && c.values.size() <= 1)
      in.add_guard(root.table.relid, c.column.attnum, c.column.kind, c.op,
                   c.values.empty() ? std::string() : c.values.front());
}

/* Whether filter picks some root rows (not all of them). */
bool filters(const Jsonb *filter) {
  jb::View f = filter ? jb::View(filter) : jb::View();
  return f.is_object() && f.size() > 0;
}

std::unique_ptr<Interest> interest_of(const Plan &plan, const PartedValue &value,
                                      const Jsonb *filter) {
  auto in = std::make_unique<Interest>();
  in->clear(settings.interest_bytes * 8);
  for (uint32_t relid : plan.tables()) in->add_table(relid);
  add_where_guards(*in, plan);
  jb::View f = filter ? jb::View(filter) : jb::View();
  bool filtered = filters(filter);
  if (!interest_follows_rows(plan, filter)) {
    /* every row of the root may enter, every child hangs from a held row */
    for (uint32_t relid : plan.tables()) in->add_wild(relid);
    return in;
  }
  const TableInfo &root = plan.root->table;
  InterestBuilder b(*in);
  /* A window without a filter: any root row that sorts inside it may
   * enter it, but only the rows it holds have children that matter. */
  if (!filtered && !add_window_range(*in, *plan.root, value)) in->add_wild(root.relid);
  for (uint32_t i = 0; filtered && i < f.size(); i++) {
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

}  // namespace

/*
 * Whether a value's interest names the keys of its rows, and so changes
 * with them: a filtered value, or a window of the root.  Else every event
 * of its tables matters, whatever rows it holds.
 */
bool interest_follows_rows(const Plan &plan, const Jsonb *filter) {
  return filters(filter) || plan.root->query.windowed();
}

namespace {

/*
 * The interest entry that the names of one shared value use together in
 * this session (those that do not LISTEN: a channel is a name's own), per
 * role: the worker matches it once and wakes the backend once, and it is
 * published once per version of the shared value, however many names of
 * the session hold it.
 */
struct SharedEntry {
  int entry = -1;
  uint32_t generation = 0;
  int names = 0;
  bool published = false;
  uint64_t version = 0;    /* the shared value's version it was made from */
  uint64_t trust_from = 0; /* see Held::trust_from */
};

std::map<std::pair<int, Oid>, SharedEntry> &shared_entries() {
  static auto *entries = new std::map<std::pair<int, Oid>, SharedEntry>();
  return *entries;
}

SharedEntry &shared_entry_of(const Held &h) {
  return shared_entries().at({h.shared, h.role});
}

/*
 * Publishes the interest of value in entry; the seq it is trusted from, or
 * nullopt when the entry has that interest already (most changes leave the
 * keys a value depends on as they were): the trust it had goes on, and the
 * worker need not index it again.
 */
std::optional<uint64_t> publish(int entry, const Plan &plan, const PartedValue &value,
                                const Jsonb *filter) {
  std::unique_ptr<Interest> in = interest_of(plan, value, filter);
  if (interest_published(entry, *in)) return std::nullopt;
  interest_publish(entry, *in);
  return last_seq();
}

}  // namespace

/*
 * Gives h an interest entry (h.entry stays -1 when none is free): the
 * session's entry of its shared value, or one of its own.
 */
void attach_entry(Held &h, bool listen) {
  held_layout_changed();
  h.shares_entry = h.shared >= 0 && !listen;
  if (!h.shares_entry) {
    h.entry = pg_call([&] { return interest_attach(h.generation, listen); });
    /* A new entry matches every event until h publishes its interest:
     * trusted for the events after this. */
    h.trust_from = last_seq();
    return;
  }
  SharedEntry &se = shared_entries()[{h.shared, h.role}];
  if (se.names == 0) se.entry = pg_call([&] { return interest_attach(se.generation, false); });
  se.names++;
  h.entry = se.entry;
  h.generation = se.generation;
}

/* h no longer uses its entry (the last name of a shared entry frees it). */
void detach_entry(Held &h) {
  held_layout_changed();
  if (h.shares_entry) {
    auto it = shared_entries().find({h.shared, h.role});
    if (it != shared_entries().end() && --it->second.names == 0) {
      if (it->second.entry >= 0) interest_detach(it->second.entry);
      shared_entries().erase(it);
    }
  } else if (h.entry >= 0) {
    interest_detach(h.entry);
    /* The entry's channel dies with it (another value will get a new one). */
    if (h.listening) {
      std::string channel = interest_channel(h.entry, h.generation);
      pg_call([&] { Async_Unlisten(channel.c_str()); });
    }
  }
  h.entry = -1;
  h.shares_entry = false;
}

/* The seq up to which h must read events itself (Held::trust_from). */
uint64_t trust_from(const Held &h) {
  return h.shares_entry ? shared_entry_of(h).trust_from : h.trust_from;
}

/*
 * Whether the worker will wake this session for every event that may
 * change h: h has an interest entry, and h has read every event up to
 * the last one queued when it published its interest.  Events before
 * that may have been matched against the interest it had before (a batch
 * in flight), and are loaded without a wake: a waiting call must look
 * again soon, not sleep to its timeout.
 */
bool trusted(const Held &h) {
  return h.entry >= 0 && h.scanned >= trust_from(h);
}

/*
 * Brings a client that waits by LISTEN back to changes(): a notification,
 * delivered at this transaction's commit, to h's own channel
 * (hold(listen => true)) or to the session's (listen_changes()).  A client
 * that comes back before the worker moved on (it lags, or is restarting)
 * would spin: a transaction that recalls at the loaded seq of the last
 * recall first waits 10 ms, once, as wait_changes() looks again in 10 ms.
 */
void recall_listener(const Held &h) {
  std::string channel;
  if (h.listening && h.entry >= 0 && !h.shares_entry)
    channel = interest_channel(h.entry, h.generation);
  else if (interest_session_listens())
    channel = interest_listen_session();
  else
    return;
  static uint64_t recalled_loaded = 0;
  static LocalTransactionId recalled_in = InvalidLocalTransactionId;
  uint64_t loaded = pg_call([] { return loaded_seq(); });
  if (loaded == recalled_loaded && MyProc->lxid != recalled_in)
    pg_call([] {
      (void)WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
      CHECK_FOR_INTERRUPTS();
    });
  recalled_loaded = loaded;
  recalled_in = MyProc->lxid;
  pg_call([&] { Async_Notify(channel.c_str(), "{}"); });
}

/*
 * After changes(): a value that is not trusted may have events that the
 * worker matched against its older interest, and loads without a
 * notification.  wait_changes() looks again within 10 ms; a client that
 * waits by LISTEN is told to come back (until it is trusted, each call
 * brings it back once more: the worker's batch in flight is done within
 * milliseconds).
 */
void recall_if_untrusted(const Held &h) {
  if (h.entry >= 0 && !trusted(h)) recall_listener(h);
}

/* Publishes the interest of value, which h holds or is about to. */
void publish_interest(Held &h, const Plan &plan, const PartedValue &value) {
  if (h.entry < 0) return;
  if (std::optional<uint64_t> trust = publish(h.entry, plan, value, h.filter))
    h.trust_from = *trust;
}

/*
 * The entry of h's session whose interest is that of h's shared value at
 * version, or -1: the events it does not match cannot change the value as
 * it was then (catch_up()).
 */
int shared_interest_at(const Held &h, uint64_t version) {
  if (!h.shares_entry || h.entry < 0) return -1;
  const SharedEntry &se = shared_entry_of(h);
  return se.published && se.version == version ? se.entry : -1;
}

/*
 * Publishes the interest of h's shared value, at version or later, in h's
 * entry (the worker wakes backends by entry), unless the entry has it
 * already.  Its rows are copied for it when the interest names their keys.
 */
void publish_shared_interest(Held &h, const Plan &plan, uint64_t version) {
  if (h.entry < 0) return;
  bool follows = interest_follows_rows(plan, h.filter);
  SharedEntry *se = h.shares_entry ? &shared_entry_of(h) : nullptr;
  if (se && se->published && (!follows || se->version >= version)) return;
  uint64_t made_from = 0;
  std::optional<uint64_t> trust;
  if (!follows) {
    trust = publish(h.entry, plan, PartedValue{}, h.filter);
  } else {
    OwnedContext scratch(pg_call([] {
      return AllocSetContextCreate(CurrentMemoryContext, "ecto_sync shared interest",
                                   ALLOCSET_DEFAULT_SIZES);
    }));
    in_context(scratch.get(), [&] {
      SharedSince now = held_share_since(h.shared, UINT64_MAX); /* the whole value */
      made_from = now.version;
      trust = publish(h.entry, plan, now.value, h.filter);
    });
  }
  if (!se) {
    if (trust) h.trust_from = *trust;
    return;
  }
  se->published = true;
  se->version = made_from;
  if (trust) se->trust_from = *trust;
}

}  // namespace ectosync

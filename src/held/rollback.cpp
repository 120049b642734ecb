/*
 * rollback.cpp: what a rollback undoes in the session's held values.
 *
 * Held values are the session's, not the transaction's: PostgreSQL rolls
 * nothing of them back.  Two things must follow a transaction, or the
 * savepoint they ran under, that rolls back:
 *
 *   - a hold(): hold(listen => true) LISTENs, and PostgreSQL undoes a
 *     LISTEN that rolls back.  A value kept after such a rollback would
 *     stay held without its LISTEN: its client would wait for
 *     notifications that never come, with a value that silently falls
 *     behind.  So the name goes too, as a LISTEN, a SET or a cursor WITH
 *     HOLD would; its next call says that no value is held under it.
 *     (release() is not undone: the value it freed is gone.)
 *
 *   - a reply: changes() and wait_changes() move a value on as they make
 *     its reply.  An error later in the call (a cancel, a lock_timeout, out
 *     of memory while the rows are written), or in the statement, throws
 *     the reply away, and the client stays at its version while the value
 *     has moved on: no later reply would carry what it missed.  The next
 *     reply of such a value is the whole value (Held::whole_next), and
 *     wait_changes() looks at it at once; one without an interest entry
 *     LISTENs to its tables again (the reply may have LISTENed to new ones:
 *     changes.cpp).  A reply that did reach the client (a transaction that
 *     rolled back after it) gets the whole value again, which is only more
 *     bytes.
 *
 * The callbacks only move entries between lists: releasing a value takes
 * locks and may fail, which an abort callback must not do.  The next call
 * of this session into held values settles what rolled back
 * (settle_rollbacks()); until then the value costs what a held value costs,
 * and is never shown.
 */
#include "held/held_internal.hpp"
#include "pg/pg_boundary.hpp"

extern "C" {
#include "access/xact.h"
}

#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace ectosync {

namespace {

struct Made {
  bool reply;             /* a reply moved the value on; else a hold() made it */
  HeldName name;          /* a hold()'s name */
  uint64_t serial;        /* the Held (a later hold() of the name is another) */
  SubTransactionId subid; /* the subtransaction that owns it now */
};

/* What the open transaction did, oldest first: a subtransaction's are a
 * suffix, since subtransaction ids grow and a committed one's entries pass
 * to its parent. */
std::vector<Made> made;
/* What rolled back, to settle at the next call. */
std::vector<Made> undone;

/* Moves the entries made at or under subid to undone.  Allocates nothing:
 * note() reserved the room. */
void undo_from(SubTransactionId subid) {
  while (!made.empty() && made.back().subid >= subid) {
    undone.push_back(std::move(made.back()));
    made.pop_back();
  }
}

void on_xact(XactEvent event, void *) noexcept {
  switch (event) {
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
      undo_from(InvalidSubTransactionId);
      break;
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
    case XACT_EVENT_PREPARE:
      made.clear();
      break;
    default:
      break;
  }
}

void on_subxact(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
                void *) noexcept {
  if (event == SUBXACT_EVENT_ABORT_SUB)
    undo_from(mySubid);
  else if (event == SUBXACT_EVENT_COMMIT_SUB)
    for (auto it = made.rbegin(); it != made.rend() && it->subid >= mySubid; ++it)
      if (it->subid == mySubid) it->subid = parentSubid;
}

void note(bool reply, HeldName name, uint64_t serial, SubTransactionId subid) {
  /* (room for undo_from() to move every entry without allocating; grown
   * by doubling, as push_back() grows made) */
  size_t need = undone.size() + made.size() + 1;
  if (undone.capacity() < need) undone.reserve(2 * need);
  made.push_back(Made{reply, std::move(name), serial, subid});
}

}  // namespace

uint64_t note_hold(const HeldName &name) {
  static uint64_t serials = 0;
  note(false, name, ++serials, GetCurrentSubTransactionId()); /* (cannot fail) */
  return serials;
}

void note_reply(const Held &h) {
  SubTransactionId subid = GetCurrentSubTransactionId(); /* (cannot fail) */
  /* (once per value and subtransaction is enough) */
  if (!made.empty() && made.back().reply && made.back().serial == h.serial &&
      made.back().subid == subid)
    return;
  note(true, HeldName{InvalidOid, {}}, h.serial, subid);
}

void settle_rollbacks() {
  if (undone.empty()) return;
  auto &values = held_values();
  /* Replies first, and taken out of undone only once marked: what throws
   * (forget() may) loses no value's mark. */
  std::unordered_set<uint64_t> replied;
  for (const Made &entry : undone)
    if (entry.reply) replied.insert(entry.serial);
  for (auto &[key, h] : values) {
    if (!replied.count(h.serial)) continue;
    h.whole_next = true;
    /* (a reply of a value whose tables moved LISTENed to the new ones, and
     * that rolled back too: listening twice costs nothing) */
    if (h.entry >= 0) continue;
    try {
      listen_again(h, held_plan(h));
    } catch (const Error &) {
      /* (its next changes() says why) */
    }
  }
  /* (wait_changes() looks at every value again: whole_next ones included) */
  held_layout_changed();
  /* (each taken out only once done: what forget() throws leaves it for
   * the next call) */
  while (!undone.empty()) {
    const Made &entry = undone.back();
    auto it = entry.reply ? values.end() : values.find(entry.name);
    if (it != values.end() && it->second.serial == entry.serial) {
      forget(it->second);
      values.erase(it);
    }
    undone.pop_back();
  }
}

/* From _PG_init. */
void held_rollback_init() {
  RegisterXactCallback(on_xact, nullptr);
  RegisterSubXactCallback(on_subxact, nullptr);
}

}  // namespace ectosync

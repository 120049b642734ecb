/*
 * hold_undo.cpp: a hold() is undone when its transaction, or the savepoint
 * it ran under, rolls back.
 *
 * hold(listen => true) LISTENs, and PostgreSQL undoes a LISTEN that rolls
 * back.  A value kept after such a rollback would stay held without its
 * LISTEN: its client would wait for notifications that never come, with a
 * value that silently falls behind.  So the name goes too, as a LISTEN, a
 * SET or a cursor WITH HOLD would; its next call says that no value is
 * held under it.  (release() is not undone: the value it freed is gone.)
 *
 * The callbacks only move names between two lists: releasing a value takes
 * locks and may fail, which an abort callback must not do.  The next call
 * of this session into held values releases what rolled back
 * (release_rolled_back_holds()); until then the value costs what a held
 * value costs, and is never shown.
 */
#include "held/held_internal.hpp"
#include "pg/pg_boundary.hpp"

extern "C" {
#include "access/xact.h"
}

#include <string>
#include <utility>
#include <vector>

namespace ectosync {

namespace {

struct MadeHold {
  std::string name;
  uint64_t serial;        /* the Held it made (a later hold() of the name is another) */
  SubTransactionId subid; /* the subtransaction that owns it now */
};

/* Holds of the open transaction, oldest first: a subtransaction's are a
 * suffix, since subtransaction ids grow and a committed one's holds pass
 * to its parent. */
std::vector<MadeHold> made;
/* Holds that rolled back, to release at the next call. */
std::vector<MadeHold> undone;

/* Moves the holds made at or under subid to undone.  Allocates nothing:
 * note_hold() reserved the room. */
void undo_from(SubTransactionId subid) {
  while (!made.empty() && made.back().subid >= subid) {
    undone.push_back(std::move(made.back()));
    made.pop_back();
  }
}

void on_xact(XactEvent event, void *) {
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
                void *) {
  if (event == SUBXACT_EVENT_ABORT_SUB)
    undo_from(mySubid);
  else if (event == SUBXACT_EVENT_COMMIT_SUB)
    for (auto it = made.rbegin(); it != made.rend() && it->subid >= mySubid; ++it)
      if (it->subid == mySubid) it->subid = parentSubid;
}

}  // namespace

uint64_t note_hold(const std::string &name) {
  static uint64_t serials = 0;
  /* (room for undo_from() to move every hold without allocating) */
  undone.reserve(undone.size() + made.size() + 1);
  made.push_back(MadeHold{name, ++serials, pg_call([] { return GetCurrentSubTransactionId(); })});
  return serials;
}

void release_rolled_back_holds() {
  auto &values = held_values();
  while (!undone.empty()) {
    MadeHold hold = std::move(undone.back());
    undone.pop_back();
    auto it = values.find(hold.name);
    if (it == values.end() || it->second.serial != hold.serial) continue;
    forget(it->second);
    values.erase(it);
  }
}

/* From _PG_init. */
void hold_undo_init() {
  RegisterXactCallback(on_xact, nullptr);
  RegisterSubXactCallback(on_subxact, nullptr);
}

}  // namespace ectosync

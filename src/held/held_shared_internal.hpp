/*
 * held_shared_internal.hpp: the layout of the shared held values, for the
 * two files that keep them: held_shared.cpp (the area, the slots' life; its
 * header comment has the layout and the lock protocol) and
 * held_shared_turns.cpp (the turns, the log of patches).
 */
#pragma once

#include "held/held_shared.hpp"

extern "C" {
#include "postgres.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "utils/dsa.h"
}

#include <vector>

namespace ectosync {

constexpr int kLogEntries = 64;
/* Room for why a value was reloaded (longer reasons are cut). */
constexpr int kReasonBytes = 512;

/* The patch that moved a value to a version: the events, then the ops.
 * (Plain data: zeroed, it is empty; InvalidDsaPointer is 0.) */
struct LogEntry {
  uint64 version;    /* 0: empty */
  bool whole;        /* the client must take the whole value */
  dsa_pointer piece; /* [uint64 events[events]][ops jsonb], MAXALIGNed */
  uint32 events;
  Size ops_offset, size;
};

struct SharedHeld {
  Oid db;      /* InvalidOid: free */
  Oid creator; /* the role that shared it: its bytes count in its ectosync.max_role_share */
  uint32 relid;
  uint32 key_hash;
  dsa_pointer spec; /* the normalized spec, NUL-terminated */
  int holders;
  int turn; /* the pid of the backend applying events, 0: none */
  uint64 version, scanned;
  dsa_pointer head;
  dsa_pointer parts; /* dsa_pointer[nparts] */
  int nparts;
  Size bytes;  /* head and parts */
  Size logged; /* the log's pieces */
  /* It outgrew its creator's share (its holders' role): they leave it at
   * their next turn, and nobody attaches. */
  bool closed;
  LogEntry log[kLogEntries];
  uint64 reload_version;         /* the last version that reloaded the value, 0: none */
  char reload_why[kReasonBytes]; /* why, NUL-terminated */
  /* Waiters for its turn: a slot's own, so that a turn ended wakes only
   * them (with one for all, each ended turn woke every waiter of every
   * value; a tag rename at 200 holders meant thousands of wakes).  Last:
   * clear_slot() keeps it (held_shared.cpp's header comment). */
  ConditionVariable cv;
};

/* A free slot: every field zeroed but the condition variable. */
void clear_slot(SharedHeld &s);

struct HeldSharedControl {
  LWLock *lock;
  int area_tranche;
  int nslots;
  Size area_size;
};

extern HeldSharedControl *control; /* in shared memory, laid out at startup */
extern SharedHeld *slots;          /* [control->nslots], right after it */

/*
 * What the shared values that role created take, under control->lock
 * (slot `except` left out): their bytes (values and logs) and slots.  A
 * role's share of both is its ectosync.max_role_share (share_of()).
 */
struct Taken {
  long bytes = 0;
  int slots = 0;
};
Taken taken_by(Oid role, int except = -1);
/* role's share of the area's bytes (not under the lock: it reads the catalog). */
long share_of(Oid role);
/*
 * Whether role has room for bytes more within share (and for one more slot
 * within slots, unless slots < 0), slot `except` left out; takes the lock.
 * Asked before a value is copied into the area, so that a value past its
 * role's share is not copied at all: the copy would take, for as long as
 * it lasts, room that other roles' values need.  The answer under the lock
 * after the copy is the one that counts (others may have taken room).
 */
bool has_room(Oid role, long bytes, long share, int slots, int except = -1);

/* The area, attached on first use (for the life of the backend). */
dsa_area *the_area();

template <typename T>
T *at(dsa_pointer p) {
  return static_cast<T *>(dsa_get_address(the_area(), p));
}

/* A copy of j in the area, or InvalidDsaPointer without memory. */
dsa_pointer share_bytes(const void *bytes, Size size);

void free_if_valid(dsa_pointer p);

/*
 * The area's pointers to value's parts: a part that is one of the shared
 * ones (at old_addrs, whose pointers are old_ptrs) stays as it is, the
 * others are copied (copied lists them).  false without memory (the
 * copies made are freed).
 */
bool share_parts(const PartedValue &value, const std::vector<dsa_pointer> &old_ptrs,
                 const std::vector<const Jsonb *> &old_addrs, std::vector<dsa_pointer> &out,
                 std::vector<dsa_pointer> &copied);

}  // namespace ectosync

/*
 * held_shared.cpp: the shared values of held_shared.hpp.
 *
 * Layout, sized at server start (never grows):
 *   HeldSharedControl     the lock, the condition variable, the slots
 *   SharedHeld[min(max_held_values, 128)]
 *     each: key (database, table, spec), holders, the backend whose turn it
 *     is, version and scanned, the head and parts (dsa pointers), and a
 *     ring of the last kLogEntries patches
 *   a dsa area of ectosync.held_shared_memory, in place: the heads, parts,
 *     part lists, keys and patches
 *
 * Lock protocol: control->lock (in the "ecto_sync" tranche) guards every
 * slot's fields and the pointers to what the area holds.  Readers copy
 * under it shared, into memory they allocated before taking it (they check
 * that the version did not move meanwhile); the backend whose turn it is
 * publishes under it exclusive, and frees what it replaced then.  Parts
 * are never written in place: the backend whose turn it is reads the
 * shared parts without the lock, because only it may replace them until
 * it publishes or abandons.  Waiters for a turn sleep on control->cv.
 * control->lock is never held with another ecto_sync lock; under it only
 * dsa_free and dsa_get_address are called (which take the area's own lock:
 * order control->lock, then the area's).
 */
#include "held/held_shared.hpp"

#include "pg/pg_boundary.hpp"
#include "settings.hpp"
#include "shmem/shmem_internal.hpp"

extern "C" {
#include "miscadmin.h"
#include "common/hashfn.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/dsa.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

#include <algorithm>
#include <cstring>

namespace ectosync {
namespace {

constexpr int kLogEntries = 64;
/* Room for why a value was reloaded (longer reasons are cut). */
constexpr int kReasonBytes = 512;
/* Distinct shared values at most (each shape held by several sessions). */
constexpr int kMaxShared = 128;

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
  Size bytes; /* head and parts */
  LogEntry log[kLogEntries];
  uint64 reload_version;         /* the last version that reloaded the value, 0: none */
  char reload_why[kReasonBytes]; /* why, NUL-terminated */
};

struct HeldSharedControl {
  LWLock *lock;
  ConditionVariable cv;
  int area_tranche;
  int nslots;
  Size area_size;
};

HeldSharedControl *control = nullptr;
SharedHeld *slots = nullptr;
void *area_place = nullptr;
dsa_area *area = nullptr; /* this backend's attachment */

int slot_count() {
  return std::min(settings.max_held_values, kMaxShared);
}
Size slots_bytes() {
  return mul_size(sizeof(SharedHeld), slot_count());
}
Size area_bytes() {
  return (Size)settings.held_shared_kb * 1024;
}

/* The area, attached on first use (for the life of the backend). */
dsa_area *the_area() {
  if (!area)
    area = pg_call([] {
      MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
      LWLockRegisterTranche(control->area_tranche, "ecto_sync held values");
      dsa_area *a = dsa_attach_in_place(area_place, nullptr);
      dsa_pin_mapping(a);
      MemoryContextSwitchTo(old);
      return a;
    });
  return area;
}

template <typename T>
T *at(dsa_pointer p) {
  return static_cast<T *>(dsa_get_address(the_area(), p));
}

uint32 spec_hash(uint32_t relid, const std::string &spec) {
  return hash_bytes(reinterpret_cast<const unsigned char *>(spec.data()), (int)spec.size()) ^ relid;
}

bool matches(const SharedHeld &s, uint32_t relid, uint32 hash, const std::string &spec) {
  return s.db == MyDatabaseId && s.relid == relid && s.key_hash == hash &&
         std::strcmp(at<char>(s.spec), spec.c_str()) == 0;
}

/* A copy of j in the area, or InvalidDsaPointer without memory. */
dsa_pointer share_bytes(const void *bytes, Size size) {
  /* (HUGE: no ERROR for sizes past 1 GB either, only no memory) */
  dsa_pointer p = dsa_allocate_extended(the_area(), size, DSA_ALLOC_NO_OOM | DSA_ALLOC_HUGE);
  if (DsaPointerIsValid(p)) std::memcpy(dsa_get_address(the_area(), p), bytes, size);
  return p;
}

void free_if_valid(dsa_pointer p) {
  if (DsaPointerIsValid(p)) dsa_free(the_area(), p);
}

/* Frees a slot's value and log (the slot itself stays taken). */
void free_contents(SharedHeld &s) {
  if (DsaPointerIsValid(s.parts)) {
    dsa_pointer *parts = at<dsa_pointer>(s.parts);
    for (int i = 0; i < s.nparts; i++) free_if_valid(parts[i]);
  }
  free_if_valid(s.parts);
  free_if_valid(s.head);
  for (LogEntry &e : s.log) free_if_valid(e.piece);
}

/*
 * The area's pointers to value's parts: a part that is one of the shared
 * ones (at old_addrs, whose pointers are old_ptrs) stays as it is, the
 * others are copied (copied lists them).  false without memory (the
 * copies made are freed).
 */
bool share_parts(const PartedValue &value, const std::vector<dsa_pointer> &old_ptrs,
                 const std::vector<const Jsonb *> &old_addrs, std::vector<dsa_pointer> &out,
                 std::vector<dsa_pointer> &copied) {
  for (const Jsonb *p : value.parts) {
    dsa_pointer found = InvalidDsaPointer;
    for (size_t i = 0; i < old_addrs.size() && !DsaPointerIsValid(found); i++)
      if (old_addrs[i] == p) found = old_ptrs[i];
    if (!DsaPointerIsValid(found)) {
      found = share_bytes(p, VARSIZE(p));
      if (!DsaPointerIsValid(found)) {
        for (dsa_pointer c : copied) dsa_free(the_area(), c);
        copied.clear();
        return false;
      }
      copied.push_back(found);
    }
    out.push_back(found);
  }
  return true;
}

}  // namespace

Size held_shared_shmem_size() {
  return add_size(add_size(MAXALIGN(sizeof(HeldSharedControl)), MAXALIGN(slots_bytes())),
                  area_bytes());
}

void held_shared_shmem_startup(LWLock *lock) {
  bool found;
  control = (HeldSharedControl *)ShmemInitStruct("ecto_sync held values", held_shared_shmem_size(),
                                                 &found);
  char *base = reinterpret_cast<char *>(control) + MAXALIGN(sizeof(HeldSharedControl));
  slots = reinterpret_cast<SharedHeld *>(base);
  area_place = base + MAXALIGN(slots_bytes());
  if (found) return;
  control->lock = lock;
  ConditionVariableInit(&control->cv);
  control->nslots = slot_count();
  control->area_size = area_bytes();
  std::memset(slots, 0, slots_bytes());
  if (area_bytes() == 0 || area_bytes() < dsa_minimum_size()) {
    control->area_size = 0;
    return;
  }
  /* Created here, in the postmaster, for the life of shared memory; never
   * more than the in-place bytes (no dsm segments are made). */
  control->area_tranche = LWLockNewTrancheId();
  LWLockRegisterTranche(control->area_tranche, "ecto_sync held values");
  dsa_area *a = dsa_create_in_place(area_place, area_bytes(), control->area_tranche, nullptr);
  dsa_set_size_limit(a, area_bytes());
  dsa_pin(a);
  dsa_detach(a);
}

bool held_sharing_enabled() {
  return control && control->area_size > 0 && control->nslots > 0;
}

int held_share_find(uint32_t relid, const std::string &spec) {
  if (!held_sharing_enabled()) return -1;
  the_area(); /* attached before the lock: matches() reads the keys */
  uint32 hash = spec_hash(relid, spec);
  int found = -1;
  LWLockAcquire(control->lock, LW_EXCLUSIVE);
  for (int i = 0; i < control->nslots && found < 0; i++)
    if (slots[i].db != InvalidOid && matches(slots[i], relid, hash, spec)) found = i;
  if (found >= 0) slots[found].holders++;
  LWLockRelease(control->lock);
  return found;
}

int held_share_create(uint32_t relid, const std::string &spec, const PartedValue &value,
                      uint64_t scanned) {
  if (!held_sharing_enabled()) return -1;
  the_area();
  uint32 hash = spec_hash(relid, spec);
  /* Copied before the lock is taken; freed if unused. */
  dsa_pointer spec_p = share_bytes(spec.c_str(), spec.size() + 1);
  dsa_pointer head_p = share_bytes(value.head, VARSIZE(value.head));
  std::vector<dsa_pointer> parts, copied;
  bool ok = DsaPointerIsValid(spec_p) && DsaPointerIsValid(head_p) &&
            share_parts(value, {}, {}, parts, copied);
  dsa_pointer list_p =
      ok ? share_bytes(parts.data(), sizeof(dsa_pointer) * parts.size()) : InvalidDsaPointer;
  int slot = -1;
  Oid role = GetUserId();
  long share = pg_call([] { return role_share((long)area_bytes()); });
  if (ok && DsaPointerIsValid(list_p)) {
    LWLockAcquire(control->lock, LW_EXCLUSIVE);
    for (int i = 0; i < control->nslots && slot < 0; i++)
      if (slots[i].db != InvalidOid && matches(slots[i], relid, hash, spec)) slot = i;
    if (slot >= 0) {
      slots[slot].holders++; /* shared meanwhile: ours is not needed */
      LWLockRelease(control->lock);
    } else {
      /* Past its share, a role's value goes on as its session's own. */
      long taken = (long)value_bytes(value);
      for (int i = 0; i < control->nslots; i++)
        if (slots[i].db != InvalidOid && slots[i].creator == role) taken += (long)slots[i].bytes;
      for (int i = 0; i < control->nslots && slot < 0 && taken <= share; i++)
        if (slots[i].db == InvalidOid) slot = i;
      if (slot >= 0) {
        SharedHeld &s = slots[slot];
        std::memset(&s, 0, sizeof s);
        s.db = MyDatabaseId;
        s.creator = role;
        s.relid = relid;
        s.key_hash = hash;
        s.spec = spec_p;
        s.holders = 1;
        s.head = head_p;
        s.parts = list_p;
        s.nparts = (int)parts.size();
        s.bytes = value_bytes(value);
        s.scanned = scanned;
        LWLockRelease(control->lock);
        return slot;
      }
      LWLockRelease(control->lock);
    }
  }
  for (dsa_pointer p : copied) dsa_free(the_area(), p);
  for (dsa_pointer p : {spec_p, head_p, list_p}) free_if_valid(p);
  return slot;
}

void held_share_detach(int slot) {
  /* (a backend that holds a slot attached the area to find or make it) */
  if (slot < 0 || !control || !area) return;
  LWLockAcquire(control->lock, LW_EXCLUSIVE);
  SharedHeld &s = slots[slot];
  if (s.turn == MyProcPid) s.turn = 0;
  if (--s.holders <= 0) {
    free_contents(s);
    free_if_valid(s.spec);
    std::memset(&s, 0, sizeof s);
  }
  LWLockRelease(control->lock);
  ConditionVariableBroadcast(&control->cv);
}

SharedTurn held_share_turn(int slot, uint64_t upto, PartedValue &value, uint64_t &version,
                           uint64_t &scanned) {
  SharedHeld &s = slots[slot];
  TimestampTz start = GetCurrentTimestamp();
  bool mine = false, current = false, timed_out = false;
  ConditionVariablePrepareToSleep(&control->cv);
  for (;;) {
    LWLockAcquire(control->lock, LW_EXCLUSIVE);
    version = s.version;
    scanned = s.scanned;
    current = s.scanned >= upto;
    mine = !current && s.turn == 0;
    if (mine) s.turn = MyProcPid;
    LWLockRelease(control->lock);
    timed_out = TimestampDifferenceExceeds(start, GetCurrentTimestamp(), kTurnWaitMs);
    if (current || mine || timed_out) break;
    try {
      pg_call([] { ConditionVariableTimedSleep(&control->cv, 100, PG_WAIT_EXTENSION); });
    } catch (...) {
      ConditionVariableCancelSleep();
      throw;
    }
  }
  ConditionVariableCancelSleep();
  if (current) return SharedTurn::Current;
  if (!mine) return SharedTurn::TimedOut;
  /* Our turn: nobody else replaces the parts until we publish. */
  try {
    value.head = at<Jsonb>(s.head);
    value.parts.clear();
    dsa_pointer *parts = at<dsa_pointer>(s.parts);
    for (int i = 0; i < s.nparts; i++) value.parts.push_back(at<Jsonb>(parts[i]));
  } catch (...) {
    held_share_abandon(slot);
    throw;
  }
  return SharedTurn::Mine;
}

bool held_share_publish(int slot, const PartedValue &value, const Jsonb *ops,
                        const std::string *reloaded, const std::vector<uint64_t> &events,
                        uint64_t scanned) {
  SharedHeld &s = slots[slot];
  bool whole = reloaded != nullptr;
  if (!ops && !whole) {
    /* No patch, no change: the parts stay (one version, one set of parts:
     * what held_share_since relies on). */
    LWLockAcquire(control->lock, LW_EXCLUSIVE);
    s.scanned = scanned;
    s.turn = 0;
    LWLockRelease(control->lock);
    ConditionVariableBroadcast(&control->cv);
    return true;
  }
  /* What the value shares with the old one stays; the rest is copied. */
  std::vector<dsa_pointer> old_ptrs;
  std::vector<const Jsonb *> old_addrs;
  dsa_pointer *old_list = at<dsa_pointer>(s.parts);
  for (int i = 0; i < s.nparts; i++) {
    old_ptrs.push_back(old_list[i]);
    old_addrs.push_back(at<Jsonb>(old_list[i]));
  }
  bool new_head = value.head != at<Jsonb>(s.head);
  std::vector<dsa_pointer> parts, copied;
  dsa_pointer head_p = new_head ? share_bytes(value.head, VARSIZE(value.head)) : s.head;
  bool ok = DsaPointerIsValid(head_p) && share_parts(value, old_ptrs, old_addrs, parts, copied);
  dsa_pointer list_p =
      ok ? share_bytes(parts.data(), sizeof(dsa_pointer) * parts.size()) : InvalidDsaPointer;
  /* the patch: [events][ops] */
  dsa_pointer piece = InvalidDsaPointer;
  Size events_bytes = MAXALIGN(sizeof(uint64) * events.size());
  Size piece_size =
      std::max<Size>(events_bytes + (ops ? MAXALIGN(VARSIZE(ops)) : 0), MAXIMUM_ALIGNOF);
  if (ok && DsaPointerIsValid(list_p)) {
    piece = dsa_allocate_extended(the_area(), piece_size, DSA_ALLOC_NO_OOM | DSA_ALLOC_HUGE);
    if (DsaPointerIsValid(piece)) {
      char *dst = at<char>(piece);
      if (!events.empty()) std::memcpy(dst, events.data(), sizeof(uint64) * events.size());
      if (ops) std::memcpy(dst + events_bytes, ops, VARSIZE(ops));
    }
  }
  if (!ok || !DsaPointerIsValid(list_p) || !DsaPointerIsValid(piece)) {
    for (dsa_pointer p : copied) dsa_free(the_area(), p);
    if (new_head) free_if_valid(head_p);
    free_if_valid(list_p);
    held_share_abandon(slot);
    return false;
  }
  LWLockAcquire(control->lock, LW_EXCLUSIVE);
  for (dsa_pointer old : old_ptrs)
    if (std::find(parts.begin(), parts.end(), old) == parts.end()) dsa_free(the_area(), old);
  dsa_free(the_area(), s.parts);
  if (new_head) dsa_free(the_area(), s.head);
  s.head = head_p;
  s.parts = list_p;
  s.nparts = (int)parts.size();
  s.bytes = value_bytes(value);
  s.version++;
  LogEntry &e = s.log[(s.version - 1) % kLogEntries];
  free_if_valid(e.piece);
  e.version = s.version;
  e.whole = whole;
  e.piece = piece;
  e.events = (uint32)events.size();
  e.ops_offset = events_bytes;
  e.size = piece_size;
  if (reloaded) {
    s.reload_version = s.version;
    size_t n = std::min<size_t>(reloaded->size(), kReasonBytes - 1);
    std::memcpy(s.reload_why, reloaded->data(), n);
    s.reload_why[n] = '\0';
  }
  s.scanned = scanned;
  s.turn = 0;
  LWLockRelease(control->lock);
  ConditionVariableBroadcast(&control->cv);
  return true;
}

void held_share_abandon(int slot) {
  if (slot < 0 || !control) return;
  LWLockAcquire(control->lock, LW_EXCLUSIVE);
  if (slots[slot].turn == MyProcPid) slots[slot].turn = 0;
  LWLockRelease(control->lock);
  ConditionVariableBroadcast(&control->cv);
}

SharedSince held_share_since(int slot, uint64_t from) {
  SharedHeld &s = slots[slot];
  for (;;) {
    /* 1. what to copy, and how much */
    LWLockAcquire(control->lock, LW_SHARED);
    uint64 version = s.version, scanned = s.scanned;
    bool whole = from > version || version - from > kLogEntries;
    Size bytes = 0, events = 0;
    for (uint64 v = from + 1; v <= version && !whole; v++) {
      const LogEntry &e = s.log[(v - 1) % kLogEntries];
      whole = e.version != v || e.whole;
      bytes += e.size;
      events += e.events;
    }
    int nparts = s.nparts;
    Size value_size = s.bytes;
    if (whole) bytes = value_size + (nparts + 1) * MAXIMUM_ALIGNOF; /* each MAXALIGNed */
    uint64 reload_version = s.reload_version;
    char reload_why[kReasonBytes];
    std::memcpy(reload_why, s.reload_why, kReasonBytes);
    LWLockRelease(control->lock);
    SharedSince out;
    out.version = version;
    out.scanned = scanned;
    out.whole = whole;
    out.reload_version = reload_version;
    reload_why[kReasonBytes - 1] = '\0';
    out.reload_why = reload_why;
    if (version == from) return out;
    /* 2. the room, outside the lock */
    char *buf = pg_call([&] { return static_cast<char *>(palloc(bytes)); });
    out.ops.reserve(version - from);
    out.events.reserve(events);
    out.value.parts.reserve(nparts);
    /* 3. the copy, if nothing moved meanwhile */
    LWLockAcquire(control->lock, LW_SHARED);
    bool same = s.version == version && s.nparts == nparts && s.bytes == value_size;
    if (same && whole) {
      out.value.head = reinterpret_cast<Jsonb *>(buf);
      Jsonb *head = at<Jsonb>(s.head);
      std::memcpy(buf, head, VARSIZE(head));
      char *next = buf + MAXALIGN(VARSIZE(head));
      dsa_pointer *parts = at<dsa_pointer>(s.parts);
      for (int i = 0; i < nparts; i++) {
        Jsonb *part = at<Jsonb>(parts[i]);
        std::memcpy(next, part, VARSIZE(part));
        out.value.parts.push_back(reinterpret_cast<Jsonb *>(next));
        next += MAXALIGN(VARSIZE(part));
      }
    } else if (same) {
      char *next = buf;
      for (uint64 v = from + 1; v <= version; v++) {
        const LogEntry &e = s.log[(v - 1) % kLogEntries];
        std::memcpy(next, at<char>(e.piece), e.size);
        const uint64 *events = reinterpret_cast<const uint64 *>(next);
        out.events.insert(out.events.end(), events, events + e.events);
        out.ops.push_back(reinterpret_cast<Jsonb *>(next + e.ops_offset));
        next += e.size;
      }
    }
    LWLockRelease(control->lock);
    if (same) return out;
    pg_call([&] { pfree(buf); });
  }
}

void held_share_describe(int slot, size_t &bytes, int &parts, int &holders) {
  LWLockAcquire(control->lock, LW_SHARED);
  bytes = slots[slot].bytes;
  parts = slots[slot].nparts;
  holders = slots[slot].holders;
  LWLockRelease(control->lock);
}

}  // namespace ectosync

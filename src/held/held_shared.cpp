/*
 * held_shared.cpp: the shared values of held_shared.hpp: their layout in
 * shared memory, the dsa area, and the slots: found, created, detached,
 * described.  The turns that move a value on, and its log of patches, are
 * in held_shared_turns.cpp; held_shared_internal.hpp has what both share.
 *
 * Layout, sized at server start (never grows):
 *   HeldSharedControl     the lock, the slots
 *   SharedHeld[min(max_held_values, 1024)], about 3.7 kB each
 *     each: key (database, table, spec), holders, the backend whose turn it
 *     is, version and scanned, the head and parts (dsa pointers), a ring of
 *     the last kLogEntries patches, and the condition variable its turn's
 *     waiters sleep on
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
 * it publishes or abandons.  Waiters for a turn sleep on their slot's cv,
 * which has its own spinlock and outlives the slot's uses: made once at
 * startup, never cleared (a backend that exits while waiting may still be
 * in its queue when the slot is freed and taken again, and leaves it
 * later; a broadcast to a slot taken again only wakes its waiters for
 * nothing).
 * control->lock is never held with another ecto_sync lock; under it only
 * dsa_free and dsa_get_address are called (which take the area's own lock:
 * order control->lock, then the area's).
 */
#include "held/held_shared.hpp"
#include "held/held_shared_internal.hpp"

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
}

#include <algorithm>
#include <cstring>

namespace ectosync {

HeldSharedControl *control = nullptr;
SharedHeld *slots = nullptr;

namespace {

/* Distinct shared values at most (each shape held by several sessions).
 * 128 were too few for a thousand screens of a few hundred shapes: the
 * values past them were each session's own, patched once per session. */
constexpr int kMaxShared = 1024;

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

uint32 spec_hash(uint32_t relid, const std::string &spec) {
  return hash_bytes(reinterpret_cast<const unsigned char *>(spec.data()), (int)spec.size()) ^ relid;
}

/* (a closed slot matches nothing: its holders are leaving it) */
bool matches(const SharedHeld &s, uint32_t relid, uint32 hash, const std::string &spec) {
  return s.db == MyDatabaseId && !s.closed && s.relid == relid && s.key_hash == hash &&
         std::strcmp(at<char>(s.spec), spec.c_str()) == 0;
}

}  // namespace

Taken taken_by(Oid role, int except) {
  Taken taken;
  for (int i = 0; i < control->nslots; i++)
    if (i != except && slots[i].db != InvalidOid && slots[i].creator == role) {
      taken.bytes += (long)(slots[i].bytes + slots[i].logged);
      taken.slots++;
    }
  return taken;
}

long share_of(Oid role) {
  return pg_call([&] { return role_share((long)area_bytes(), role); });
}

bool has_room(Oid role, long bytes, long share, int slots, int except) {
  LWLockAcquire(control->lock, LW_SHARED);
  Taken taken = taken_by(role, except);
  LWLockRelease(control->lock);
  return taken.bytes + bytes <= share && (slots < 0 || taken.slots < slots);
}

namespace {

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

}  // namespace

void clear_slot(SharedHeld &s) {
  std::memset(&s, 0, offsetof(SharedHeld, cv));
}

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

dsa_pointer share_bytes(const void *bytes, Size size) {
  /* (HUGE: no ERROR for sizes past 1 GB either, only no memory) */
  dsa_pointer p = dsa_allocate_extended(the_area(), size, DSA_ALLOC_NO_OOM | DSA_ALLOC_HUGE);
  if (DsaPointerIsValid(p)) std::memcpy(dsa_get_address(the_area(), p), bytes, size);
  return p;
}

void free_if_valid(dsa_pointer p) {
  if (DsaPointerIsValid(p)) dsa_free(the_area(), p);
}

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
  control->nslots = slot_count();
  control->area_size = area_bytes();
  std::memset(slots, 0, slots_bytes());
  for (int i = 0; i < control->nslots; i++) ConditionVariableInit(&slots[i].cv);
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
  Oid role = GetUserId();
  long share = share_of(role);
  long slot_share = pg_call([] { return role_share(control->nslots); });
  if (!has_room(role, (long)value_bytes(value), share, (int)slot_share)) return -1;
  /* Copied before the lock is taken; freed if unused. */
  dsa_pointer spec_p = share_bytes(spec.c_str(), spec.size() + 1);
  dsa_pointer head_p = share_bytes(value.head, VARSIZE(value.head));
  std::vector<dsa_pointer> parts, copied;
  bool ok = DsaPointerIsValid(spec_p) && DsaPointerIsValid(head_p) &&
            share_parts(value, {}, {}, parts, copied);
  dsa_pointer list_p =
      ok ? share_bytes(parts.data(), sizeof(dsa_pointer) * parts.size()) : InvalidDsaPointer;
  int slot = -1;
  if (ok && DsaPointerIsValid(list_p)) {
    LWLockAcquire(control->lock, LW_EXCLUSIVE);
    for (int i = 0; i < control->nslots && slot < 0; i++)
      if (slots[i].db != InvalidOid && matches(slots[i], relid, hash, spec)) slot = i;
    if (slot >= 0) {
      slots[slot].holders++; /* shared meanwhile: ours is not needed */
      LWLockRelease(control->lock);
    } else {
      /* Past its share of bytes or of slots, a role's value goes on as
       * its session's own: one role cannot take every slot with tiny
       * values, nor the area with large ones. */
      Taken taken = taken_by(role);
      bool room = taken.bytes + (long)value_bytes(value) <= share && taken.slots < slot_share;
      for (int i = 0; i < control->nslots && slot < 0 && room; i++)
        if (slots[i].db == InvalidOid) slot = i;
      if (slot >= 0) {
        SharedHeld &s = slots[slot];
        clear_slot(s);
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
  bool freed = --s.holders <= 0;
  if (freed) {
    free_contents(s);
    free_if_valid(s.spec);
    clear_slot(s);
  }
  LWLockRelease(control->lock);
  if (!freed) ConditionVariableBroadcast(&s.cv);
}

void held_share_describe(int slot, size_t &bytes, int &parts, int &holders) {
  LWLockAcquire(control->lock, LW_SHARED);
  bytes = slots[slot].bytes;
  parts = slots[slot].nparts;
  holders = slots[slot].holders;
  LWLockRelease(control->lock);
}

}  // namespace ectosync

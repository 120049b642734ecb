/*
 * held_shared_turns.cpp: how a shared value (held_shared.hpp) moves on.  One
 * backend at a time takes the turn to apply the events loaded since, then
 * publishes the new value with its patch into the slot's log of patches, or
 * abandons the turn; every holder copies the patches since its client's
 * version out of that log.  The layout and the lock protocol are in
 * held_shared.cpp's header comment, where the slots are also found, created
 * and freed.
 */
#include "held/held_shared.hpp"
#include "held/held_shared_internal.hpp"

#include "pg/pg_boundary.hpp"
#include "settings.hpp"

extern "C" {
#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "utils/dsa.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

#include <algorithm>
#include <cstring>

namespace ectosync {

static void publish_locked(SharedHeld &s, const std::vector<dsa_pointer> &parts,
                           const std::vector<dsa_pointer> &old_ptrs, dsa_pointer list_p,
                           dsa_pointer head_p, bool new_head, const PartedValue &value,
                           dsa_pointer piece, Size piece_size, const std::vector<uint64_t> &events,
                           Size events_bytes, bool whole, const std::string *reloaded,
                           uint64_t scanned);

SharedTurn held_share_turn(int slot, uint64_t upto, PartedValue &value, uint64_t &version,
                           uint64_t &scanned) {
  SharedHeld &s = slots[slot];
  /* Most sessions find the events applied by another's turn: a shared
   * look, without the exclusive lock that every other session waits for. */
  LWLockAcquire(control->lock, LW_SHARED);
  version = s.version;
  scanned = s.scanned;
  bool closed = s.closed;
  LWLockRelease(control->lock);
  if (closed) return SharedTurn::Closed;
  if (scanned >= upto) return SharedTurn::Current;
  TimestampTz start = GetCurrentTimestamp();
  bool mine = false, current = false, timed_out = false;
  ConditionVariablePrepareToSleep(&s.cv);
  for (;;) {
    LWLockAcquire(control->lock, LW_EXCLUSIVE);
    version = s.version;
    scanned = s.scanned;
    closed = s.closed;
    current = !closed && s.scanned >= upto;
    mine = !closed && !current && s.turn == 0;
    if (mine) s.turn = MyProcPid;
    LWLockRelease(control->lock);
    timed_out = TimestampDifferenceExceeds(start, GetCurrentTimestamp(), kTurnWaitMs);
    if (closed || current || mine || timed_out) break;
    try {
      pg_call([&] { ConditionVariableTimedSleep(&s.cv, 100, PG_WAIT_EXTENSION); });
    } catch (...) {
      ConditionVariableCancelSleep();
      throw;
    }
  }
  ConditionVariableCancelSleep();
  if (closed) return SharedTurn::Closed;
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

bool held_share_busy(int slot, uint64_t upto) {
  const SharedHeld &s = slots[slot];
  LWLockAcquire(control->lock, LW_SHARED);
  bool busy = s.scanned < upto && s.turn != 0 && s.turn != MyProcPid;
  LWLockRelease(control->lock);
  return busy;
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
    ConditionVariableBroadcast(&s.cv);
    return true;
  }
  /* (read before anything is allocated; the creator stays while we hold
   * the slot, and is our role: share_key()) */
  Oid creator = s.creator;
  long share = share_of(creator);
  Size events_bytes = MAXALIGN(sizeof(uint64) * events.size());
  Size piece_size =
      std::max<Size>(events_bytes + (ops ? MAXALIGN(VARSIZE(ops)) : 0), MAXIMUM_ALIGNOF);
  /* (nothing is copied for a value that fits no share: has_room()) */
  LWLockAcquire(control->lock, LW_SHARED);
  const LogEntry &oldest = s.log[s.version % kLogEntries]; /* (replaced: freed) */
  long estimate =
      (long)(value_bytes(value) + s.logged - (oldest.version ? oldest.size : 0) + piece_size);
  LWLockRelease(control->lock);
  if (!has_room(creator, estimate, share, -1, slot)) {
    LWLockAcquire(control->lock, LW_EXCLUSIVE);
    s.closed = true;
    LWLockRelease(control->lock);
    held_share_abandon(slot);
    return false;
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
  if (ok && DsaPointerIsValid(list_p)) {
    piece = dsa_allocate_extended(the_area(), piece_size, DSA_ALLOC_NO_OOM | DSA_ALLOC_HUGE);
    if (DsaPointerIsValid(piece)) {
      char *dst = at<char>(piece);
      if (!events.empty()) std::memcpy(dst, events.data(), sizeof(uint64) * events.size());
      if (ops) std::memcpy(dst + events_bytes, ops, VARSIZE(ops));
    }
  }
  /* The value grows within its creator's share, log included: a value
   * that grows after it was shared counts as one shared large.  Past it,
   * it is closed, and each holder goes on with its own (leave_shared()). */
  if (ok && DsaPointerIsValid(list_p) && DsaPointerIsValid(piece)) {
    LWLockAcquire(control->lock, LW_EXCLUSIVE);
    const LogEntry &replaced = s.log[s.version % kLogEntries];
    long logged = (long)(s.logged - (replaced.version ? replaced.size : 0) + piece_size);
    long bytes = (long)value_bytes(value) + logged;
    if (taken_by(creator, slot).bytes + bytes <= share) {
      publish_locked(s, parts, old_ptrs, list_p, head_p, new_head, value, piece, piece_size, events,
                     events_bytes, whole, reloaded, scanned);
      LWLockRelease(control->lock);
      ConditionVariableBroadcast(&s.cv);
      return true;
    }
    s.closed = true;
    LWLockRelease(control->lock);
  }
  for (dsa_pointer p : copied) dsa_free(the_area(), p);
  if (new_head) free_if_valid(head_p);
  free_if_valid(list_p);
  free_if_valid(piece);
  held_share_abandon(slot);
  return false;
}

/*
 * The new value and its patch in place of the old, under control->lock
 * exclusive: what the old parts do not share with the new is freed.
 */
static void publish_locked(SharedHeld &s, const std::vector<dsa_pointer> &parts,
                           const std::vector<dsa_pointer> &old_ptrs, dsa_pointer list_p,
                           dsa_pointer head_p, bool new_head, const PartedValue &value,
                           dsa_pointer piece, Size piece_size, const std::vector<uint64_t> &events,
                           Size events_bytes, bool whole, const std::string *reloaded,
                           uint64_t scanned) {
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
  if (e.version) s.logged -= e.size;
  s.logged += piece_size;
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
}

void held_share_abandon(int slot) {
  if (slot < 0 || !control) return;
  SharedHeld &s = slots[slot];
  LWLockAcquire(control->lock, LW_EXCLUSIVE);
  if (s.turn == MyProcPid) s.turn = 0;
  LWLockRelease(control->lock);
  ConditionVariableBroadcast(&s.cv);
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

}  // namespace ectosync

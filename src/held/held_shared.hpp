/*
 * held_shared.hpp: held values that sessions share (held.cpp).
 *
 * Sessions that hold the same value (same database, table, assocs,
 * filter and role) would each apply every event to their own copy: with 15
 * sessions holding all 2,000 posts, a tag rename was rewritten 15 times;
 * with 10,000 values of 50 users' posts on 8 connections, each change of
 * a user's posts was applied to each of their 200 copies.
 * Such a value is kept once, in shared memory (ectosync.held_shared_memory),
 * with a log of the patches that moved it from one version to the next.
 * One session at a time takes the turn to apply the events loaded since
 * (the others wait for it), publishes the new parts and the patch, and
 * every session replies to its client from the log.
 *
 * Only values whose rows are the same for every role that may read them
 * are shared: without row level security on any of their tables for the
 * caller (a filter is part of the value's key: its text, cast under the
 * pinned settings, picks the same rows for every role).  Table privileges
 * are checked per call, as for any value.  Still, only sessions of one
 * role share a value: a role must not learn which lists another's
 * sessions hold (sharing.cpp's share_key()).
 *
 * Every function acts on the current database.  Errors come as C++
 * exceptions (PostgreSQL's through pg_call); detach and abandon never fail.
 */
#pragma once

#include "value/parts.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace ectosync {

/* Whether shared memory for shared values was configured (size > 0). */
bool held_sharing_enabled();

/* The shared value of (relid, spec), attached (one more holder); -1: none. */
int held_share_find(uint32_t relid, const std::string &spec);

/*
 * Shares value (scanned: the last event it reflects) under (relid, spec),
 * attached, at version 0; or attaches to the one that another session
 * shared meanwhile.  -1 when neither a slot nor the memory for the value
 * is free.
 */
int held_share_create(uint32_t relid, const std::string &spec, const PartedValue &value,
                      uint64_t scanned);

/* One holder fewer; the last one frees the value.  Never fails. */
void held_share_detach(int slot);

/*
 * The turn to apply the events up to upto.  Mine: this backend has it
 * (value then points into shared memory, unchanged until this backend
 * publishes or abandons).  Current: the value reflects them already,
 * perhaps after waiting out another backend's turn.  TimedOut: another
 * backend's turn lasted more than kTurnWaitMs (it may wait for a lock that
 * this session holds: waits on turns are invisible to the deadlock
 * detector).  Closed: the value outgrew every holder's share
 * (held_share_publish): leave it.  version and scanned are the shared
 * value's.
 */
enum class SharedTurn { Mine, Current, TimedOut, Closed };
constexpr int kTurnWaitMs = 5000;
SharedTurn held_share_turn(int slot, uint64_t upto, PartedValue &value, uint64_t &version,
                           uint64_t &scanned);

/*
 * Whether another backend's turn is applying events to the value that it
 * has not applied up to upto: a backend with other values to move on does
 * those first, and finds this one current more often than not, instead of
 * waiting for each turn in a row while its own are not taken.  A glance:
 * the turn may be taken or given up right after.
 */
bool held_share_busy(int slot, uint64_t upto);

/*
 * Ends the turn.  With a patch (ops, a jsonb array; or reloaded, why the
 * value was loaded again: the client must take the whole value instead),
 * value (whose parts point into shared memory where they did not change)
 * becomes the shared value and the version moves on by one; without, the
 * value stays as it is.  Either way it reflects the events up to scanned.
 * false when shared memory ran out, or the value outgrew its creator's
 * share (ectosync.max_role_share): nothing changed and the turn is given
 * up; in the latter case the slot is closed too.
 */
bool held_share_publish(int slot, const PartedValue &value, const Jsonb *ops,
                        const std::string *reloaded, const std::vector<uint64_t> &events,
                        uint64_t scanned);

/* Gives the turn up after an error.  Never fails. */
void held_share_abandon(int slot);

/*
 * What a client at version from needs: the patches since (copied into
 * CurrentMemoryContext, oldest first), or whole (the log no longer has them,
 * or one replaces the value) with the value copied.  And the last version
 * that reloaded the value (0: none yet), with why.
 */
struct SharedSince {
  uint64_t version = 0, scanned = 0;
  bool whole = false;
  uint64_t reload_version = 0;
  std::string reload_why;
  std::vector<Jsonb *> ops;     /* one jsonb array per version */
  std::vector<uint64_t> events; /* the events that changed the value */
  PartedValue value;            /* when whole */
};
SharedSince held_share_since(int slot, uint64_t from);

/* The shared value's size, parts and holders, for held(). */
void held_share_describe(int slot, size_t &bytes, int &parts, int &holders);

}  // namespace ectosync

/*
 * seal.hpp: a value's seal, so that sync() under row level security patches
 * only values that the server made for the caller as it is now.
 *
 * sync() trusts the value it is given: it finds the rows an event names by
 * the event's key, foreign key and $query columns, and what it does with
 * the value's rows shows in the value it returns.  Under row level
 * security those columns may be of rows the caller cannot see.  A value
 * forged with guessed rows (ids 1..N, a page starting at a guessed key),
 * or a real one made to look older or newer than it is (its "seq" moved,
 * so that it no longer holds what the caller sees at that seq), would
 * learn from which of its rows sync() removed or read again the keys and
 * columns of other users' changed rows.  A value that load() or sync()
 * made for the caller, at its seq, holds what the caller saw then, and
 * patching it gives what a fresh load() gives: it learns nothing more.
 *
 * The seal is an HMAC-SHA-256 (128 bits of it, in hex) under a key that
 * only shared memory holds, over what decides which rows the caller sees
 * (the current and the session user, the custom settings that policies
 * may read: pg/sql_context.hpp's custom_settings()), the value's seq, and
 * a digest of the rest of the value.  A value synced to the seq of a
 * fresh load() has the load's seal.  Numbers are hashed in their
 * normalized form ("2.50" as "2.5"), so that a client that parses and
 * prints the value again keeps its seal, as long as it keeps every digit.
 * Only values under row level security that applies to the caller carry
 * one: without it the caller may read every row a forged value could ask
 * about.  Held values have none: sync() never takes them back.  Every
 * custom setting counts, also one set per request (a request id, HTTP
 * headers): a value synced under another reloads (ZE001).
 */
#pragma once

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
}

#include "core/plan.hpp"

#include <array>
#include <cstdint>

namespace ectosync {

/* A digest of a value without its "seq" and "seal" (what a seal covers
 * besides them), so that a value whose seq alone moved is sealed again
 * without reading it. */
using ValueDigest = std::array<uint8_t, 32>;

/* value with its "seal" for the caller (added or replaced); digest: the
 * value's, when known (only its seq moved since). */
Jsonb *with_seal(const Jsonb *value, const ValueDigest *digest = nullptr);

/* value without a "seal": one that sync() no longer seals. */
Jsonb *without_seal(const Jsonb *value);

/* Whether value's "seal" is the one with_seal() gives it for the caller;
 * its digest into *digest when it is. */
bool seal_holds(const Jsonb *value, ValueDigest *digest);

}  // namespace ectosync

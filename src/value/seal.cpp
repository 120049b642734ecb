/*
 * seal.cpp: a value's seal (seal.hpp).
 *
 * seal = HMAC-SHA-256(key; domain, current user, session user, custom
 * settings, seq, digest), cut to 128 bits; digest = SHA-256 of the value
 * without its top-level "seq" and "seal", walked in jsonb's order (object
 * keys sorted), each item a tag, a length and its bytes, so that no two
 * different values feed the same bytes.  Only the key is secret.
 */
#include "value/seal.hpp"

#include "pg/pg_boundary.hpp"
#include "pg/sql_context.hpp"
#include "shmem/shmem.hpp"
#include "value/catalog.hpp"
#include "value/jsonb_writer.hpp"

extern "C" {
#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
}

#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace ectosync {

namespace {

constexpr int kSealBytes = 16; /* of the HMAC's 32: 128 bits */
constexpr char kDigestDomain[] = "ecto_sync value digest 1";
constexpr char kSealDomain[] = "ecto_sync value seal 1";

/* Feeds one item (a tag, its length, its bytes) through update(bytes, length). */
template <typename Update>
bool feed(Update &&update, char tag, const void *data, uint32 len) {
  uint8 head[5] = {(uint8)tag, (uint8)(len >> 24), (uint8)(len >> 16), (uint8)(len >> 8),
                   (uint8)len};
  return update(head, sizeof head) && (len == 0 || update((const uint8 *)data, len));
}

/* A jsonb scalar; numbers normalized ("2.50" and "2.5" alike: a client may
 * print the value again). */
template <typename Update>
bool feed_scalar(Update &&update, const JsonbValue &v) {
  switch (v.type) {
    case jbvNull:
      return feed(update, 'z', nullptr, 0);
    case jbvBool:
      return feed(update, v.val.boolean ? 't' : 'f', nullptr, 0);
    case jbvString:
      return feed(update, 's', v.val.string.val, (uint32)v.val.string.len);
    case jbvNumeric: {
      char *text = numeric_normalize(v.val.numeric);
      bool ok = feed(update, 'n', text, (uint32)strlen(text));
      pfree(text);
      return ok;
    }
    default:
      return false; /* (no other scalar comes out of an iterator) */
  }
}

bool is_top_key(const JsonbValue &key, const char *name) {
  return (size_t)key.val.string.len == strlen(name) &&
         memcmp(key.val.string.val, name, key.val.string.len) == 0;
}

/*
 * Walks value into update(), leaving out the top-level "seq" and "seal"
 * (whatever they hold).  PostgreSQL's code and trivially destructible
 * locals only: the caller runs it in pg_call().
 */
template <typename Update>
bool walk(const Jsonb *value, Update &&update) {
  JsonbIterator *it = JsonbIteratorInit((JsonbContainer *)&value->root);
  JsonbValue v;
  JsonbIteratorToken token;
  int depth = 0;
  bool skipping = false; /* in the entry of a top-level "seq" or "seal" */
  bool ok = true;
  while (ok && (token = JsonbIteratorNext(&it, &v, false)) != WJB_DONE) {
    bool opens = token == WJB_BEGIN_OBJECT || token == WJB_BEGIN_ARRAY;
    bool closes = token == WJB_END_OBJECT || token == WJB_END_ARRAY;
    depth += opens ? 1 : closes ? -1 : 0;
    if (skipping) {
      /* (its scalar, or the end of its container, ends it) */
      skipping = depth > 1 || (!closes && token != WJB_VALUE);
      continue;
    }
    switch (token) {
      case WJB_BEGIN_OBJECT:
        ok = feed(update, '{', nullptr, 0);
        break;
      case WJB_BEGIN_ARRAY:
        ok = feed(update, v.val.array.rawScalar ? '!' : '[', nullptr, 0);
        break;
      case WJB_END_OBJECT:
        ok = feed(update, '}', nullptr, 0);
        break;
      case WJB_END_ARRAY:
        ok = feed(update, ']', nullptr, 0);
        break;
      case WJB_KEY:
        skipping = depth == 1 && (is_top_key(v, "seq") || is_top_key(v, "seal"));
        if (!skipping) ok = feed(update, 'k', v.val.string.val, (uint32)v.val.string.len);
        break;
      case WJB_VALUE:
      case WJB_ELEM:
        ok = feed_scalar(update, v);
        break;
      default:
        break;
    }
  }
  return ok;
}

/* Runs fn() (PostgreSQL's code only) in a memory context of its own: the
 * walk allocates per container and number. */
template <typename Fn>
bool in_scratch(Fn &&fn) {
  return pg_call([&] {
    MemoryContext scratch =
        AllocSetContextCreate(CurrentMemoryContext, "ecto_sync seal", ALLOCSET_SMALL_SIZES);
    MemoryContext caller = MemoryContextSwitchTo(scratch);
    bool ok = fn();
    MemoryContextSwitchTo(caller);
    MemoryContextDelete(scratch);
    return ok;
  });
}

ValueDigest digest_of(const Jsonb *value) {
  ValueDigest digest{};
  bool ok = in_scratch([&] {
    pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
    auto update = [&](const uint8 *data, size_t len) {
      return pg_cryptohash_update(ctx, data, len) == 0;
    };
    bool done = ctx && pg_cryptohash_init(ctx) == 0 &&
                feed(update, 'd', kDigestDomain, sizeof kDigestDomain - 1) && walk(value, update) &&
                pg_cryptohash_final(ctx, digest.data(), digest.size()) == 0;
    if (ctx) pg_cryptohash_free(ctx);
    return done;
  });
  if (!ok) throw Error(ERRCODE_INTERNAL_ERROR, "ecto_sync: could not compute a value's digest");
  return digest;
}

/* The seal, in hex, of a value with seq (its jsonb number, if any) and digest. */
std::string seal_of(std::optional<jb::Elem> seq, const ValueDigest &digest) {
  CustomSettings settings = custom_settings();
  uint8 mac[PG_SHA256_DIGEST_LENGTH];
  bool ok = in_scratch([&] {
    Oid users[2] = {GetUserId(), GetSessionUserId()};
    const char *seq_text = seq && seq->is_numeric() ? numeric_normalize(seq->numeric()) : "";
    pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
    auto update = [&](const uint8 *data, size_t len) {
      return pg_hmac_update(ctx, data, len) == 0;
    };
    bool done = ctx && pg_hmac_init(ctx, seal_key(), kSealKeySize) == 0 &&
                feed(update, 'd', kSealDomain, sizeof kSealDomain - 1) &&
                feed(update, 'u', users, sizeof users);
    /* (one set and reset since reads as '': as one never set) */
    for (const auto &[name, setting] : settings)
      done =
          done && (setting.empty() || (feed(update, 'g', name.data(), (uint32)name.size()) &&
                                       feed(update, 'v', setting.data(), (uint32)setting.size())));
    done = done && feed(update, 'q', seq_text, (uint32)strlen(seq_text)) &&
           feed(update, 'h', digest.data(), (uint32)digest.size()) &&
           pg_hmac_final(ctx, mac, sizeof mac) == 0;
    if (ctx) pg_hmac_free(ctx);
    return done;
  });
  if (!ok) throw Error(ERRCODE_INTERNAL_ERROR, "ecto_sync: could not compute a value's seal");
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  for (int i = 0; i < kSealBytes; i++) {
    hex.push_back(digits[mac[i] >> 4]);
    hex.push_back(digits[mac[i] & 15]);
  }
  return hex;
}

/* value's top-level entries but "seal", as a Node to add to. */
jb::Node copy_but_seal(const Jsonb *value) {
  jb::View v(value);
  jb::Node out = jb::Node::object();
  for (uint32_t i = 0; i < v.size(); i++)
    if (v.key(i) != "seal") out.set(v.key(i), jb::Node::copy(v.value(i)));
  return out;
}

}  // namespace

Jsonb *with_seal(const Jsonb *value, const ValueDigest *digest) {
  std::string seal = seal_of(jb::View(value).get("seq"), digest ? *digest : digest_of(value));
  jb::Node out = copy_but_seal(value);
  out.set("seal", jb::Node::string(seal));
  return jb::to_jsonb(out);
}

Jsonb *without_seal(const Jsonb *value) {
  return jb::to_jsonb(copy_but_seal(value));
}

bool seal_holds(const Jsonb *value, ValueDigest *digest) {
  jb::View v(value);
  std::optional<jb::Elem> given = v.get("seal");
  if (!given || !given->is_string()) return false;
  ValueDigest found = digest_of(value);
  std::string wanted = seal_of(v.get("seq"), found);
  std::string_view text = given->str();
  if (text.size() != wanted.size()) return false;
  /* (in constant time: a caller must not learn the seal from its timing) */
  unsigned char diff = 0;
  for (size_t i = 0; i < wanted.size(); i++) diff |= (unsigned char)(text[i] ^ wanted[i]);
  if (diff != 0) return false;
  *digest = found;
  return true;
}

}  // namespace ectosync

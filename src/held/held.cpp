/*
 * held.cpp: values held in the session, patched in place, sent as changes.
 *
 * With sync(value, event) a client sends its whole value and gets it back
 * on every notification: for a value of hundreds of kB, parsing and
 * printing it costs more than the change.  A session can instead hold the
 * value itself:
 *
 *   hold(name, tbl, assocs, filter, listen)
 *                                    load, keep the value under name; returns
 *                                    it (version 0); with listen, LISTEN to
 *                                    the value's own channel
 *   changes(name, version)           apply every event the worker has loaded
 *                                    since; returns {"version", "seq",
 *                                    "patch"[, "events"]}: the JSON Patch
 *                                    (RFC 6902) from the client's version to
 *                                    the new one (empty: nothing changed; the
 *                                    version moves when the held value
 *                                    changes), the last event seq it reflects (a
 *                                    client can ignore notifications of
 *                                    events up to it), and the seqs of the
 *                                    events that changed the value
 *   wait_changes(name, version, timeout_ms)
 *                                    changes() once the value changed: the
 *                                    worker sets the waiting backend's latch
 *                                    for its events only, where LISTEN wakes
 *                                    every listener of the database
 *   release(name), release_all(), held()
 *                                    forget a value (every value of the
 *                                    roles whose privileges the role has,
 *                                    and of roles dropped); list them
 *
 * changes() reads the event log itself, so it needs no payloads: a client
 * calls it on any notification, and one call covers all events so far.  It
 * applies events only up to loaded_seq(): their rows are cached, and each
 * later event is notified once the worker has loaded it.  When the value
 * must be reloaded (ZE001 for sync()), changes() reloads it here and the
 * patch replaces the whole value ("path": "").  A client whose version is
 * not the held one (it missed a reply) gets the whole value too.
 *
 * Notifications: hold() publishes what the value depends on (its
 * interest, interest.hpp) and LISTENs to a channel of its own,
 * "ectosync_held_<entry>_<generation>"; the worker notifies that channel
 * only for events that may change the value.  changes() publishes the new
 * interest whenever the value changed, then looks again at what the worker
 * loaded meanwhile (those events were matched against the old interest),
 * so no event that concerns the value goes unnotified.  Without a free
 * entry (ectosync.max_held_values), the value listens to its tables (and
 * to "ectosync_session_<pid>" for the notification hold() sends itself).
 *
 * Held values live in this backend's memory ("ecto_sync held values", a
 * child of TopMemoryContext), one copy each, until release() or the end of
 * the session; a hold() whose transaction or savepoint rolls back is
 * undone, as its LISTEN is (rollback.cpp).  They are read as the role
 * that called hold(), under the custom settings it had (held_settings.cpp),
 * and named per role: after SET ROLE every call finds
 * only the current role's values, so a role neither reads through another's
 * value nor learns which names it holds.
 *
 * Sharing: a value of tables without row level security for the caller
 * is shared by the sessions of its role that hold it (the same table,
 * assocs and filter; held_shared.hpp), and by one session that holds it under
 * several names: kept once in shared memory; each change is applied once,
 * during the turn of whichever session asks first, and published with its
 * patch; every session answers its client from the published patches, and
 * publishes the value's interest in its own entry (the worker wakes each
 * holder).  hold() attaches
 * to a value already shared (after applying every event committed before
 * the call).  A session leaves with a copy of its own when its
 * transaction has an xid (it may read what others cannot), when it
 * waited too long for another's turn, or when shared memory runs out; it
 * loads its own when row level security comes to apply.
 */
#include "value/catalog.hpp"
#include "value/diff.hpp"
#include "held/held_shared.hpp"
#include "core/interest.hpp"
#include "value/keys.hpp"
#include "pg/pg_boundary.hpp"
#include "settings.hpp"
#include "shmem/shmem.hpp"
#include "value/sync.hpp"
#include "held/held_internal.hpp"
#include "value/jsonb_writer.hpp"

extern "C" {
#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "commands/async.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
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
#include <string>
#include <unordered_map>

using namespace ectosync;

/*
 * Held values and their LISTENs are the session's, and outlive the call:
 * code that runs with another role's rights in a security-restricted
 * operation (a table owner's index expression during a superuser's
 * maintenance, a cast the worker runs) must not leave any in the session
 * that runs it, as PostgreSQL refuses its LISTEN there.
 */
static void refuse_restricted_operation() {
  if (InSecurityRestrictedOperation())
    throw Error(ERRCODE_INSUFFICIENT_PRIVILEGE,
                "ecto_sync: held values cannot be used within a security-restricted operation");
}

/*
 * Every SQL function of held values, by construction: an ECTOSYNC_FUNCTION
 * that is refused in a security-restricted operation, and first settles
 * what rolled back since the last call (rollback.cpp), before it looks at
 * any value.
 */
#define HELD_FUNCTION(name)                          \
  static Datum name##_held(FunctionCallInfo fcinfo); \
  ECTOSYNC_FUNCTION(name) {                          \
    refuse_restricted_operation();                   \
    settle_rollbacks();                              \
    return name##_held(fcinfo);                      \
  }                                                  \
  static Datum name##_held(FunctionCallInfo fcinfo)

/* SQL: ectosync.hold(name text, tbl regclass, assocs jsonb, filter jsonb, listen boolean) RETURNS
 * jsonb */
HELD_FUNCTION(ectosync_hold) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                    errmsg("ecto_sync: hold() needs a name and a table")));
  Oid relid = PG_GETARG_OID(1);
  Jsonb *assocs = jsonb_arg_or_null(fcinfo, 2);
  Jsonb *filter = jsonb_arg_or_null(fcinfo, 3);
  bool listen = PG_ARGISNULL(4) || PG_GETARG_BOOL(4);
  text *name = PG_GETARG_TEXT_PP(0);
  Jsonb *value = hold(text_string(name), relid, assocs, filter, listen);
  PG_RETURN_JSONB_P(value);
}

/*
 * SQL: ectosync.listen_changes() RETURNS text.  LISTENs to the session's
 * channel (interest_listen_session()): one notification per worker batch
 * that concerns any of its held values, for clients that wait with LISTEN
 * rather than in wait_changes(); they then call wait_changes(0).  A
 * notification to itself, delivered at this transaction's commit, makes
 * the client look once: changes before its LISTEN took effect are covered.
 * For values without an interest entry, which the worker cannot notify
 * the session of, it LISTENs to their tables' channels too.
 */
HELD_FUNCTION(ectosync_listen_changes) {
  (void)fcinfo;
  text *name = [&] {
    std::string channel = interest_listen_session();
    for (auto &[held_name, h] : own_values()) {
      if (h.entry >= 0 || h.listening) continue; /* (hold() listened to them) */
      try {
        listen_to_tables(held_plan(h), channel);
      } catch (const Error &) {
        /* (a value whose plan no longer resolves: its changes() says why) */
      }
    }
    return pg_call([&] {
      Async_Listen(channel.c_str());
      Async_Notify(channel.c_str(), "{}");
      return cstring_to_text(channel.c_str());
    });
  }();
  PG_RETURN_TEXT_P(name);
}

/* SQL: ectosync.changes(name text, version bigint DEFAULT NULL) RETURNS jsonb */
HELD_FUNCTION(ectosync_changes) {
  if (PG_ARGISNULL(0))
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                    errmsg("ecto_sync: changes() needs the name of a held value")));
  std::optional<int64_t> version;
  if (!PG_ARGISNULL(1)) version = PG_GETARG_INT64(1);
  text *name = PG_GETARG_TEXT_PP(0);
  PG_RETURN_JSONB_P(changes(text_string(name), version).envelope);
}

/* SQL: ectosync.wait_changes(name text, version bigint, timeout_ms int DEFAULT 10000) RETURNS jsonb
 */
HELD_FUNCTION(ectosync_wait_changes) {
  if (PG_ARGISNULL(0))
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                    errmsg("ecto_sync: wait_changes() needs the name of a held value")));
  std::optional<int64_t> version;
  if (!PG_ARGISNULL(1)) version = PG_GETARG_INT64(1);
  int timeout_ms = PG_ARGISNULL(2) ? 10000 : PG_GETARG_INT32(2);
  if (timeout_ms < 0 || timeout_ms > 3600 * 1000)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("ecto_sync: wait_changes() timeout_ms must be between 0 and 3600000"),
                    errdetail("It was %d.", timeout_ms)));
  text *name = PG_GETARG_TEXT_PP(0);
  PG_RETURN_JSONB_P(wait_changes(text_string(name), version, timeout_ms));
}

/*
 * SQL: ectosync.wait_changes(timeout_ms int DEFAULT 10000, patch_once
 * boolean DEFAULT false) RETURNS TABLE (name, version, seq, patch, reloaded,
 * events, error, since_version, same_as): a row for each value of the
 * session that changed, as changes(name) gives it, as soon as one did; no
 * row at the timeout.  A value whose changes failed (its role may no longer
 * read a table of it) gets a row with the error and an empty patch, and the
 * others go on.
 *
 * With patch_once, a name whose reply is an earlier row's (the names of one
 * shared value at one version: a hub that shows one list on many screens)
 * gets that row's name in same_as, and no patch or events of its own.  The
 * patch of a tag renamed in a list of every post is some 10 kB; written
 * out once per name it was most of the work of such a reply, on the
 * server (jsonb to text) and on the client.
 */
HELD_FUNCTION(ectosync_wait_any) {
  int timeout_ms = PG_ARGISNULL(0) ? 10000 : PG_GETARG_INT32(0);
  if (timeout_ms < 0 || timeout_ms > 3600 * 1000)
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("ecto_sync: wait_changes() timeout_ms must be between 0 and 3600000"),
                    errdetail("It was %d.", timeout_ms)));
  bool patch_once = PG_NARGS() > 1 && !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
  ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
  InitMaterializedSRF(fcinfo, 0);
  [&] {
    /* The names of a shared value at one version share one reply: its
     * columns are made once, and sent once with patch_once. */
    std::unordered_map<const Jsonb *, std::string> first_name;
    const Jsonb *last_reply = nullptr;
    Jsonb *patch_jsonb = nullptr, *events_jsonb = nullptr;
    int64 version = 0, seq = 0;
    std::optional<jb::Elem> reloaded;
    for (const WaitRow &row : wait_any(timeout_ms)) {
      if (!row.reply || row.reply != last_reply) {
        jb::View r = row.reply ? jb::View(row.reply) : jb::View();
        auto number = [&](const char *key) {
          std::optional<jb::Elem> e = r.valid() ? r.get(key) : std::nullopt;
          return e && e->is_numeric() ? std::stoll(jb::numeric_text(e->numeric())) : 0LL;
        };
        version = row.reply ? number("version") : row.version;
        seq = row.reply ? number("seq") : (int64)row.seq;
        std::optional<jb::Elem> patch, events;
        reloaded.reset();
        if (r.valid()) {
          patch = r.get("patch");
          reloaded = r.get("reloaded");
          events = r.get("events");
        }
        patch_jsonb = jb::to_jsonb(patch ? jb::Node::copy(*patch) : jb::Node::array());
        events_jsonb = jb::to_jsonb(events ? jb::Node::copy(*events) : jb::Node::array());
        last_reply = row.reply;
      }
      std::string why = reloaded && reloaded->is_string() ? std::string(reloaded->str()) : "";
      const std::string *same_as = nullptr;
      if (patch_once && row.reply) {
        auto [first, inserted] = first_name.emplace(row.reply, row.name);
        if (!inserted) same_as = &first->second;
      }
      pg_call([&] {
        Datum values[9];
        bool nulls[9] = {};
        values[0] =
            PointerGetDatum(cstring_to_text_with_len(row.name.data(), (int)row.name.size()));
        values[1] = Int64GetDatum(version);
        values[2] = Int64GetDatum(seq);
        values[3] = JsonbPGetDatum(patch_jsonb);
        nulls[4] = !reloaded;
        values[4] = reloaded
                        ? PointerGetDatum(cstring_to_text_with_len(why.data(), (int)why.size()))
                        : (Datum)0;
        values[5] = JsonbPGetDatum(events_jsonb);
        nulls[6] = row.reply != nullptr;
        values[6] = row.reply ? (Datum)0
                              : PointerGetDatum(cstring_to_text_with_len(row.error.data(),
                                                                         (int)row.error.size()));
        values[7] = Int64GetDatum(row.since);
        nulls[3] = nulls[5] = same_as != nullptr;
        nulls[8] = same_as == nullptr;
        values[8] =
            same_as
                ? PointerGetDatum(cstring_to_text_with_len(same_as->data(), (int)same_as->size()))
                : (Datum)0;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
      });
    }
  }();
  return (Datum)0;
}

/* SQL: ectosync.release(name text) RETURNS boolean: whether it was held */
HELD_FUNCTION(ectosync_release) {
  if (PG_ARGISNULL(0)) PG_RETURN_BOOL(false);
  text *name = PG_GETARG_TEXT_PP(0);
  bool found = [&] {
    auto &values = held_values();
    auto it = find_own(text_string(name));
    if (it == values.end()) return false;
    forget(it->second);
    values.erase(it);
    return true;
  }();
  PG_RETURN_BOOL(found);
}

/*
 * SQL: ectosync.release_all() RETURNS int: forgets the values of the
 * current role, of every role whose privileges it has, and of roles
 * dropped since.  Names are per role, so the login role of a hub
 * connection that switches roles per request cannot name another role's
 * value; a request that failed before its release() would leave it held
 * until the session ends.
 */
HELD_FUNCTION(ectosync_release_all) {
  (void)fcinfo;
  int released = [&] {
    auto &values = held_values();
    Oid user = GetUserId();
    int count = 0;
    for (auto it = values.begin(); it != values.end();) {
      Oid role = it->first.role;
      /* (a dropped role's values too: no one can SET ROLE to it again) */
      if (role != user && !pg_call([&] {
            return has_privs_of_role(user, role) ||
                   !SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role));
          })) {
        ++it;
        continue;
      }
      forget(it->second);
      it = values.erase(it);
      count++;
    }
    return count;
  }();
  PG_RETURN_INT32(released);
}

/*
 * SQL: ectosync.held() RETURNS TABLE (name, tbl, assocs, filter, version,
 * seq, bytes, parts, channel, notifications, shared_by): this session's
 * held values; shared_by: the sessions holding the shared value (NULL:
 * this session's own copy).
 */
HELD_FUNCTION(ectosync_held) {
  ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
  InitMaterializedSRF(fcinfo, 0);
  [&] {
    for (const auto &[key, h] : own_values()) {
      const std::string &name = key.name;
      Datum values[11];
      bool nulls[11] = {};
      std::string channel = h.entry >= 0 ? interest_channel(h.entry, h.generation) : "";
      uint64_t notified = h.entry >= 0 ? interest_notifications(h.entry) : 0;
      size_t bytes = 0;
      int parts = 0, holders = 0;
      if (h.shared >= 0) {
        held_share_describe(h.shared, bytes, parts, holders);
      } else {
        bytes = value_bytes(h.value);
        parts = static_cast<int>(h.value.parts.size());
      }
      pg_call([&] {
        values[0] = PointerGetDatum(cstring_to_text_with_len(name.data(), (int)name.size()));
        values[1] = ObjectIdGetDatum(h.relid);
        values[2] = JsonbPGetDatum(h.assocs);
        nulls[3] = h.filter == nullptr;
        values[3] = h.filter ? JsonbPGetDatum(h.filter) : (Datum)0;
        values[4] = Int64GetDatum(h.version);
        values[5] = Int64GetDatum((int64)h.scanned);
        values[6] = Int64GetDatum((int64)bytes);
        values[7] = Int32GetDatum(parts);
        nulls[8] = h.entry < 0;
        values[8] = h.entry >= 0 ? CStringGetTextDatum(channel.c_str()) : (Datum)0;
        values[9] = Int64GetDatum((int64)notified);
        nulls[10] = h.shared < 0;
        values[10] = Int32GetDatum(holders);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
      });
    }
  }();
  return (Datum)0;
}

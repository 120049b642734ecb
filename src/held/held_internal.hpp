/*
 * held_internal.hpp: what the files of held/ share: a held value (Held), the
 * session's registry of them, and the steps of hold() and changes().
 * held.cpp holds the SQL entry points and the header comment that explains
 * the whole.
 */
#pragma once

#include "core/plan.hpp"
#include "pg/sql_context.hpp"
#include "shmem/shmem.hpp"
#include "value/jsonb_writer.hpp"
#include "value/parts.hpp"
#include "value/sync.hpp"

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"
}

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ectosync {

/* A table's owner and schema (held_plan()). */
struct TableHome {
  Oid owner = InvalidOid, schema = InvalidOid;
  bool operator==(const TableHome &o) const { return owner == o.owner && schema == o.schema; }
  bool operator!=(const TableHome &o) const { return !(*this == o); }
};

struct Held {
  Oid relid = InvalidOid;
  Jsonb *assocs = nullptr, *filter = nullptr; /* held_context; filter may be null */
  std::vector<uint32_t> tables;               /* the plan's tables when held (held_plan()) */
  std::vector<TableHome> homes;               /* and their owners and schemas */
  Oid role = InvalidOid;                      /* who called hold() */
  PartedValue value;                          /* in context (parts.hpp); none when shared */
  MemoryContext context = nullptr;            /* the value's own, under held_context */
  uint64_t scanned = 0;                       /* events up to it are reflected */
  int64_t version = 0;                        /* bumped by every non-empty patch */
  int shared = -1;                            /* its shared value (held_shared.hpp), or -1 */
  uint64_t base = 0;                          /* the shared version that is our version 0 */
  int entry = -1;                             /* its interest entry, or -1 */
  bool shares_entry = false;  /* the session's entry of its shared value (held_interest.cpp) */
  bool listening = false;     /* hold() LISTENed for it */
  uint32_t generation = 0;    /* of the entry */
  uint64_t seen = UINT64_MAX; /* the entry's notifications when wait_changes() last looked */
  /* wait_changes() found its changes failing, with the events the worker
   * had loaded then, at that time: not read again before the worker loads
   * another, or a second has passed (what made them fail may have gone
   * without an event: a GRANT, a watch() that widened a capture). */
  bool failing = false;
  uint64_t failed_at = 0;
  TimestampTz failed_time = 0;
  /* Its changes raised a PostgreSQL error (a cast or a policy that raises,
   * a table's lock), which ended the whole wait_changes() call: until they
   * succeed, they run in a subtransaction of their own, so that the error
   * becomes this value's row and the session's other values go on. */
  bool raised = false;
  /* The entry's interest was made from value: an event it does not match
   * cannot change value (catch_up() skips those). */
  bool published = false;
  /* Events up to it may have been matched against an older interest:
   * wait_changes() passes over a value without reading the events, and
   * catch_up() skips those before the first match, only once it has read
   * those (the last seq queued when it published; the shared entry's when
   * it shares one: trust_from()). */
  uint64_t trust_from = UINT64_MAX;
  bool rls = false; /* row level security applies to a table (as of the last call) */
  /* The client may lack versions: others made them of the shared value
   * this name left (leave_shared()), or the reply that carried them rolled
   * back (rollback.cpp).  Its next reply is the whole value. */
  bool whole_next = false;
  uint64_t serial = 0;                            /* which hold() made it (note_hold()) */
  std::shared_ptr<const CustomSettings> settings; /* when it was held (held_settings.cpp) */
};

struct Reply {
  Jsonb *envelope;
  bool changed; /* the patch is not empty */
};

/*
 * registry.cpp: the session's values by role and name.  A role's names are
 * its own: after SET ROLE (a hub connection that switches roles per
 * request), a name another role holds is not this role's to read, replace
 * or release, nor to learn is taken.
 */
struct HeldName {
  Oid role;
  std::string name;
  bool operator<(const HeldName &o) const { return role != o.role ? role < o.role : name < o.name; }
};
using HeldValues = std::map<HeldName, Held>;
HeldValues &held_values();
/* The current role's value under name (end() if none). */
HeldValues::iterator find_own(const std::string &name);
/* The current role's values, in name order. */
struct OwnValues {
  HeldValues::iterator first, last;
  HeldValues::iterator begin() const { return first; }
  HeldValues::iterator end() const { return last; }
};
OwnValues own_values();
/*
 * Counters that tell wait_changes(timeout_ms) whether the session's values
 * changed since it last looked at them: held_layout() moves when a value is
 * held, released, or takes or leaves an interest entry; held_touches()
 * when any call finds a value by name (and may move it on).
 */
uint64_t held_layout();
void held_layout_changed();
uint64_t held_touches();
/* A copy of j in context (held_context by default). */
Jsonb *keep(const Jsonb *j, MemoryContext context = nullptr);
MemoryContext value_context();
void forget(Held &h);
/*
 * The shared value that hold() attached (share_value()) while its name is
 * not stored yet, or -1.  detach_shared_at_exit() detaches it too: a
 * backend terminated in between unwinds nothing.
 */
extern int shared_unnamed;
void detach_shared_at_exit(int, Datum);
std::string text_string(const text *t);
/* The current role's value under name; 42704 if none. */
Held &find_held(const std::string &name);
/*
 * The plan of a held value: its spec resolved again (cached), which must
 * give the tables it was held for, or tables of the same owners in the
 * same schemas.  Its spec names them by schema and name; a schema renamed
 * and the name given to another table (by the schema's owner: a table of
 * its own, or another schema's table of the same owner) would otherwise
 * make the value that table's, read as its holder: an error says to hold
 * it again.  So does a table of it dropped (and maybe made again): the
 * value could not follow the new one.  An association that now leads to
 * another table of the same owner and schema (its foreign key made again,
 * a table renamed away and another given its name) is the value's: it is
 * loaded again (changes_made_in()).  A shared value, whose holders share
 * the old tables' value, is refused.
 */
const Plan &held_plan(const Held &h);
/* The owners and schemas of tables (InvalidOid for one that is gone). */
std::vector<TableHome> table_homes(const std::vector<uint32_t> &tables);
uint64_t value_seq(const Jsonb *value);

/* held_interest.cpp */
bool interest_follows_rows(const Plan &plan, const Jsonb *filter);
void attach_entry(Held &h, bool listen);
void detach_entry(Held &h);
uint64_t trust_from(const Held &h);
bool trusted(const Held &h);
void recall_listener(const Held &h);
void recall_if_untrusted(const Held &h);
void publish_interest(Held &h, const Plan &plan, const PartedValue &value);
void publish_shared_interest(Held &h, const Plan &plan, uint64_t version);
int shared_interest_at(const Held &h, uint64_t version);

/* sharing.cpp */
bool may_share(const Plan &plan);
bool apply_shared(const Held &h, uint64_t upto);
/* (filter: as values carry it, rendered: hold() renders it) */
Jsonb *share_value(const Plan &plan, Jsonb *assocs, Jsonb *filter, int &shared, uint64_t &base);
std::optional<Reply> shared_changes(Held &h, std::optional<int64_t> client_version);
/*
 * While one lives, shared_changes() remembers its replies to the names
 * that share their session's entry, by (shared value, role, base, version
 * replied from): the session's other names of the value at that version
 * get the same reply without asking shared memory again (wait_changes()
 * of every value of a session).
 */
class SharedReplyMemoScope {
 public:
  SharedReplyMemoScope();
  ~SharedReplyMemoScope();
  SharedReplyMemoScope(const SharedReplyMemoScope &) = delete;
  SharedReplyMemoScope &operator=(const SharedReplyMemoScope &) = delete;
};

/* rollback.cpp: what a rollback undoes (its header comment). */
/* Notes a hold() of name in the running (sub)transaction; its serial. */
uint64_t note_hold(const HeldName &name);
/* Notes that a reply moved h on in the running (sub)transaction. */
void note_reply(const Held &h);
/* Releases the values whose hold() rolled back, and makes the next reply
 * of those whose reply rolled back the whole value; every SQL function of
 * held values calls it first. */
void settle_rollbacks();

/* held_settings.cpp: the session's custom settings as a hold() keeps
 * them (one copy while they stay the same). */
std::shared_ptr<const CustomSettings> kept_settings();
/* While alive, the custom settings are those kept (any other one ''). */
class AsHeldSettings {
 public:
  explicit AsHeldSettings(const std::shared_ptr<const CustomSettings> &kept);
  ~AsHeldSettings();
  AsHeldSettings(const AsHeldSettings &) = delete;
  AsHeldSettings &operator=(const AsHeldSettings &) = delete;

 private:
  int level_ = -1; /* -1: nothing to set */
};

/* changes.cpp */
Jsonb *hold(const std::string &name, Oid relid, Jsonb *assocs, Jsonb *filter, bool listen);
Jsonb *envelope(int64_t version, uint64_t seq, jb::Node ops,
                const std::vector<uint64_t> &changed_by,
                const std::optional<std::string> &reloaded);
jb::Node replace_all(const PartedValue &value);
void catch_up(const Held &h, const Plan &plan, PartedValue &value, MemoryContext made_in,
              uint64_t &scanned, std::optional<std::string> &reloaded,
              std::vector<uint64_t> &changed_by, TouchedRows &touched, uint64_t upto = loaded_seq(),
              int interest = -1);
void listen_to_tables(const Plan &plan, const std::string &own);
void listen_again(const Held &h, const Plan &plan);
Reply changes(const std::string &name, std::optional<int64_t> client_version);
Reply changes(Held &h, std::optional<int64_t> client_version);
Jsonb *wait_changes(const std::string &name, std::optional<int64_t> client_version, int timeout_ms);
/* One value's part of wait_any(): its changes() reply, or why it failed. */
struct WaitRow {
  std::string name;
  Jsonb *reply = nullptr; /* null when it failed */
  std::string error;      /* the message, and its detail */
  int64_t version = 0;    /* the value's version (when it failed) */
  int64_t since = 0;      /* the version the patch applies to */
  uint64_t seq = 0;
};
/* Every held value of the session that changed, or whose changes failed,
 * as soon as one did (none at the timeout). */
std::vector<WaitRow> wait_any(int timeout_ms);

}  // namespace ectosync

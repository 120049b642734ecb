/*
 * event.hpp: one captured change, its binary encoding in the shared queue,
 * and its identity as seen by clients.  Pure C++ (no postgres.h).
 *
 * A writer's trigger records, per changed row, the table, the operation and
 * the key columns' values as text, as to_jsonb renders them (capture.cpp's
 * key_text(), keys.hpp): the primary key and every foreign-key/join-key
 * column that a watch tracks, old and new.
 * The worker and sync() decode the same record from shared memory.
 *
 * Clients never see column values.  A notification's payload is
 *   {"event": "<epoch>:<seq>", "table": "public.posts", "op": "UPDATE"}
 * where op is INSERT, UPDATE, DELETE or RELOAD (a gap marker: events of that
 * table were lost, or a bulk statement touched more rows than
 * ectosync.max_xact_events; holders of the table must reload).
 */
#pragma once

#include "core/plan.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ectosync {

enum class Op : char { Insert = 'I', Update = 'U', Delete = 'D', Reload = 'R' };

/*
 * Why a RELOAD marker was queued: bits, or-ed when one marker stands for
 * several (the gap set keeps one per table).  The marker's record in the
 * event log holds them (its body: two bytes), so that a reply can say why
 * the value was loaded again.
 */
enum ReloadWhy : uint16_t {
  kReloadBulk = 1,         /* a transaction past ectosync.max_xact_events */
  kReloadTruncate = 2,     /* TRUNCATE */
  kReloadQueueFull = 4,    /* the queue had no room for a transaction's events */
  kReloadFailed = 8,       /* the worker failed to read a batch's rows */
  kReloadCapture = 16,     /* watch() started capturing the table (again) */
  kReloadSchema = 32,      /* ALTER TABLE changed what its rows look like */
  kReloadPolicy = 64,      /* a table its policies read changed: values under row level security */
  kReloadSecurity = 128,   /* its policies, row level security or owner changed */
  kReloadRoles = 256,      /* roles changed (role_change.cpp): values of tables under policies */
  kReloadUncaptured = 512, /* a watch went or needs less: what values need may not be captured */
  kReloadQueueShare =
      1024,                /* the events would take the writer's role past its share of the queue */
  kReloadLongValue = 2048, /* a key or compared value longer than an event carries (64 kB) */
};

/* The longest value an event carries (a key, a foreign key, a compared column). */
constexpr size_t kMaxEventValue = UINT16_MAX;

/*
 * Whether a marker's why says only that which rows a role sees may have
 * changed: its table's rows did not, so no cached row is stale, and values
 * that row level security does not apply to take no notice.
 */
inline bool row_security_only(uint16_t why) {
  return why != 0 && (why & ~(kReloadPolicy | kReloadSecurity | kReloadRoles)) == 0;
}

/*
 * Why a value holding table ("schema.name"; empty: every table of the
 * database) must be reloaded after the RELOAD marker event_id, as the
 * detail of ZE001 and the "reloaded" of changes() say it.
 */
std::string reload_reason(uint16_t why, const std::string &table, const std::string &event_id);

const char *op_name(Op op); /* "INSERT", ... */
std::optional<Op> op_from_name(std::string_view name);

/* A key column's value before and after the change (nullopt: SQL NULL). */
struct ColumnChange {
  int16_t attnum = 0;
  bool is_pk = false;
  bool has_old = false, has_new = false; /* INSERT has no old, DELETE no new */
  std::optional<std::string> old_value, new_value;
};

struct Event {
  uint64_t seq = 0; /* assigned when the transaction's events are queued */
  uint32_t relid = 0;
  Op op = Op::Insert;
  uint16_t why = 0;                  /* RELOAD markers: ReloadWhy bits (0: unknown) */
  std::vector<ColumnChange> columns; /* primary key first, in pk order */

  const ColumnChange *column(int16_t attnum) const;
  /* The primary key before/after (empty when there is none: INSERT/DELETE). */
  std::vector<std::optional<std::string>> old_pk() const;
  std::vector<std::optional<std::string>> new_pk() const;
};

/*
 * Binary form of an event's body (everything but seq/relid/op, which the
 * queue keeps in its record header).  Values longer than 64 kB are not keys.
 */
void encode_columns(const std::vector<ColumnChange> &columns, std::string &out);
bool decode_columns(std::string_view in, std::vector<ColumnChange> &columns);

/*
 * The same encoding without allocation, for the capture trigger, which
 * writes each row's columns straight into its transaction's buffer (a value
 * is a pointer and length into the caller's memory; nullptr: SQL NULL).
 * encode_raw_columns() writes exactly encoded_size() bytes and returns the
 * end.  Neither throws.
 */
struct RawColumn {
  int16_t attnum;
  bool is_pk, has_old, has_new;
  const char *old_value, *new_value;
  size_t old_len, new_len;
};
size_t encoded_size(const RawColumn *columns, int count) noexcept;
char *encode_raw_columns(const RawColumn *columns, int count, char *out) noexcept;

/*
 * A cache key: the primary-key values of columns of kinds, each in its
 * canonical form (canonical_key_text()) and length-prefixed, so that no
 * value can run into the next.
 */
std::string encode_key(const std::vector<std::optional<std::string>> &values,
                       const std::vector<KeyKind> &kinds);

/* "<epoch as 16 hex digits>:<seq>" */
std::string format_event_id(uint64_t epoch, uint64_t seq);
bool parse_event_id(std::string_view text, uint64_t &epoch, uint64_t &seq);

/* The notification payload, and its parse (accepts a bare event id too). */
struct EventRef {
  uint64_t epoch = 0, seq = 0;
  std::string table; /* empty when given a bare event id */
  std::optional<Op> op;
};
std::string format_payload(uint64_t epoch, uint64_t seq, const std::string &table, Op op);
bool parse_payload(std::string_view text, EventRef &ref);

/* The notification channel of a table: "ectosync_<relid>". */
std::string channel_name(uint32_t relid);

}  // namespace ectosync

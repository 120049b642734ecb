/*
 * interest.hpp: which events can change a held value, so that the worker
 * notifies only the sessions whose values an event concerns.
 *
 * A value listening to its tables' channels is woken by every change of
 * those tables: a holder of one author's posts makes a round trip for every
 * post of every author.  Instead, hold() publishes the value's interest in
 * shared memory and LISTENs to a channel of its own; the worker matches each
 * batch's events against the interests of its database and notifies the
 * matching channels only.
 *
 * An interest is, over the plan's tables:
 *   - tables whose every event matters ("wild"): all of them for a value
 *     without a filter or a root window (any row of the root may enter,
 *     and every child row hangs from a row it holds); the root alone for a
 *     window without a filter that is not full, or whose order cannot be
 *     a range (only the rows it holds have children that matter); a
 *     many_to_many target whose list has a where or a window (a linked
 *     row it does not hold may enter by its own change);
 *   - ranges: a full root window's first order column and its last row's
 *     value (InterestRange: rows that sort after it cannot change it);
 *   - guards: the root list's where conditions (InterestGuard: a root row
 *     outside the where before and after a change cannot change it), when
 *     the root table appears nowhere else in the plan;
 *   - key columns (table, attnum) with the values that matter, as tokens
 *     hash(table, attnum, value text), exact while they fit and a Bloom
 *     filter past that: a filtered root's
 *     filter and primary-key values, each has_many/has_one child table's
 *     foreign key with the parents' owner values, each belongs_to target's
 *     key with the owners' values, each join table's owner key and each
 *     many_to_many target's key.
 * An event of a table with key columns matches when one of its old or new
 * values is among the tokens, or when it lacks one of those columns (its
 * table's capture does not track it: assume it matters).  RELOAD markers
 * match when they name one of the tables (or every table).  Matching only
 * ever errs towards notifying: a false positive costs the client a round
 * trip that finds nothing to change.
 *
 * This file is pure C++ (no postgres.h), unit-tested without a server;
 * held.cpp builds interests from values, shmem.cpp keeps them (one entry
 * per held value, ectosync.max_held_values) and matches events for the
 * worker.
 */
#pragma once

#include "core/event.hpp"
#include "core/plan.hpp"

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace ectosync {

constexpr int kInterestTables = 16;  /* more: every event matches */
constexpr int kInterestColumns = 32; /* more: every event matches */
constexpr int kInterestRanges = 2;   /* more: the table is wild */
constexpr int kInterestGuards = 4;   /* more: the others are not checked */
constexpr int kRangeBoundBytes = 96; /* a longer bound: the table is wild */
/*
 * The Bloom filter of a held value: ectosync.interest_size bytes (1 kB by
 * default) in shared memory, up to 4 kB.  A user's filtered value of tens
 * of rows sets a few hundred of 8,192 bits; one of 2,000 keys matches
 * about 14% of the events it should not at 1 kB, under 1% at 4 kB (each a
 * wasted round trip).  100,000 held values take about 150 MB at 1 kB.
 */
constexpr int kMaxBloomBits = 4096 * 8;
constexpr int kMaxBloomWords = kMaxBloomBits / 64;

/* splitmix64's finalizer: a bijection that spreads every bit of x over the
 * whole word (tokens' FNV hashes; the database in its epoch). */
uint64_t mix64(uint64_t x);

/* hash(table, attnum, value text): what a key value of an event stands for. */
uint64_t interest_token(uint32_t relid, int16_t attnum, std::string_view value);

/*
 * What matching needs of an event, computed once per event rather than
 * once per interest: its table, the columns it carries and the tokens of
 * their old and new values.
 */
struct EventProbe {
  uint64_t seq = 0;
  uint32_t relid = 0;
  bool reload = false;
  std::vector<int16_t> attnums;                     /* the columns it carries */
  std::vector<std::pair<int16_t, uint64_t>> tokens; /* (attnum, token) of its values */
  /* Its columns' old and new values (nullopt: NULL), for ranges and guards. */
  struct Value {
    int16_t attnum;
    bool old; /* the row before the change, else after it */
    std::optional<std::string> value;
  };
  std::vector<Value> values;
  bool has_old = false, has_new = false; /* the row before (UPDATE, DELETE), after */
};

/*
 * A full window of a table's rows, ordered by a column first: a row whose
 * old or new value of the column sorts after the window's last row (in
 * the window's order; ties do not) can neither enter the window nor move
 * it.  Plain data, for shared memory.
 */
struct InterestRange {
  uint32_t relid;
  int16_t attnum;
  uint8_t kind; /* KeyKind */
  bool desc, nulls_first;
  uint8_t length;
  char bound[kRangeBoundBytes]; /* the last row's value, as events carry it */
};

/*
 * A condition of the root list's where: column op value, of a range_kind
 * column.  A change whose row meets the where neither before nor after it
 * (by the columns it carries; one it does not carry meets anything) can
 * neither enter the list nor leave it.  Plain data, for shared memory.
 */
struct InterestGuard {
  uint32_t relid;
  int16_t attnum;
  uint8_t kind; /* KeyKind */
  uint8_t op;   /* CmpOp: a comparison or a null test */
  uint8_t length;
  char value[kRangeBoundBytes]; /* as events carry it */
};

/* Whether a value of kind that events carry as text can bound a range. */
bool range_kind(KeyKind kind);
/* Order (-1/0/1) of two texts of kind as events carry them (range_kind). */
int compare_event_texts(KeyKind kind, std::string_view a, std::string_view b);

EventProbe probe_of(const Event &ev);

/* Plain data, so that it can live in shared memory as it is. */
struct InterestColumn {
  uint32_t relid;
  int16_t attnum;
};

struct Interest {
  bool every_event; /* too many tables or columns to say */
  int ntables, nwild, ncolumns, nranges, nguards;
  uint32_t tables[kInterestTables];
  uint32_t wild[kInterestTables];
  InterestColumn columns[kInterestColumns];
  InterestRange ranges[kInterestRanges];
  InterestGuard guards[kInterestGuards];
  int bloom_bits; /* the filter's size: a multiple of 64, at most kMaxBloomBits */
  /* While the tokens fit in the filter's words (128 at 1 kB: a user's
   * value of tens of rows), they are kept there as they are, sorted:
   * matching is exact, and the worker indexes them (token -> values)
   * instead of probing every value's filter for every event.  Past that,
   * the words become the Bloom filter. */
  bool exact;
  int ntokens;
  /* Last: an interest in shared memory has only bloom_bits of it (bytes()). */
  uint64_t bloom[kMaxBloomWords];

  /* The bytes an interest with a filter of bloom_bits takes. */
  static size_t bytes(int bloom_bits);
  /* Empty, with a filter of bloom_bits (rounded down to a multiple of 64). */
  void clear(int bloom_bits = kMaxBloomBits);
  void add_table(uint32_t relid);
  void add_wild(uint32_t relid);
  void add_column(uint32_t relid, int16_t attnum);
  /* A value of a key column that matters (the column is added too). */
  void add(uint32_t relid, int16_t attnum, std::string_view value);
  /*
   * A full window's order (see InterestRange): events of relid whose value
   * of attnum sorts at or before bound, lack the column, or are NULL there
   * match.  false (nothing added) when it cannot be said: the caller makes
   * the table wild.
   */
  bool add_range(uint32_t relid, int16_t attnum, KeyKind kind, bool desc, bool nulls_first,
                 std::string_view bound);
  /*
   * A condition of the root list's where (see InterestGuard); false
   * (nothing added) when it cannot be one: another operator, a column of
   * another kind, a long value, or guards enough already.
   */
  bool add_guard(uint32_t relid, int16_t attnum, KeyKind kind, CmpOp op, std::string_view value);
  /* The table whose events guards filter (0: none). */
  uint32_t guarded() const;
  bool matches(const Event &ev) const;
  /*
   * The same for a probe.  It only reads this object and tolerates torn
   * contents (counts are clamped), so that the worker can match an
   * interest in shared memory while its holder may be rewriting it, and
   * retry when it was (interest_registry.cpp's seqlock).
   */
  bool matches(const EventProbe &ev) const;
  /* The tokens, sorted, while exact (a torn read gives at most the
   * filter's words); else empty. */
  std::pair<const uint64_t *, int> tokens() const;

 private:
  bool probe(uint64_t token) const;
  bool meets_guards(const EventProbe &ev, bool old) const;
  void add_token(uint64_t token);
  void set_bits(uint64_t token);
};

}  // namespace ectosync

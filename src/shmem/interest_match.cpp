/*
 * interest_match.cpp: the worker's matching of a batch against the held
 * values' interests of its database (shmem.hpp's interest_match()).
 *
 * Matching every entry against every event cost the worker entries x
 * events: at 100,000 held values and 500 events a second, more than a
 * core.  The worker keeps an index instead, in its own memory: from a
 * token (table, key column, value) to the entries whose exact interest
 * holds it, and from a table to the entries that every event of it, or
 * every RELOAD marker of it, concerns.  An event then visits only the
 * entries it may concern.  Interests too large for exact tokens (Bloom
 * filters), and windows' ranges, are matched in place, as before, but
 * only for events of their tables; so are the entries that an event of a
 * table their where guards finds (interest.hpp's InterestGuard).
 *
 * Holders set their entry's bit in interest_dirty after publishing an
 * interest, taking or freeing an entry; each batch first reindexes the
 * entries of this database whose bit is set (clearing it before reading
 * the entry, so a publish after that is seen by the next batch).  An
 * index that lags behind a publish matches as the old interest did, which
 * holders allow for: they trust an interest only for the events queued
 * after its publishing (held_interest.cpp, trust_from).
 *
 * Postings carry the stamp of the indexing that made them; those of an
 * older one are skipped, and dropped when they pile up.
 */
#include "shmem/shmem.hpp"

#include "pg/pg_boundary.hpp"
#include "settings.hpp"
#include "shmem/layout.hpp"
#include "shmem/shmem_internal.hpp"

extern "C" {
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
}

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

namespace ectosync {

namespace {

struct Posting {
  int entry;
  uint32_t stamp;
};
using Postings = std::vector<Posting>;

/* An entry's interest as read for indexing. */
struct EntryCopy {
  int index;
  Oid db;
  uint32 generation;
  size_t offset; /* of its Interest in the copies' buffer */
};

/*
 * read() of e's interest, again until no publish overlapped it: the
 * holder's seqlock (interest_publish(): odd while it writes).
 */
template <typename Read>
bool read_consistently(InterestEntry *e, Read read) {
  for (;;) {
    uint32 before = pg_atomic_read_u32(&e->change);
    if (before & 1) {
      pg_spin_delay();
      continue;
    }
    pg_read_barrier();
    bool result = read();
    pg_read_barrier();
    if (pg_atomic_read_u32(&e->change) == before) return result;
  }
}

class InterestIndex {
 public:
  /* Reindexes this database's entries that changed since the last call
   * (all of them at the first). */
  void refresh();
  /* Records, for each entry p may concern, p's seq as its best; entries
   * to match in place (a Bloom filter, a range, where guards of p's
   * table) go to probe_later. */
  void visit(const EventProbe &p, std::vector<std::pair<int, const EventProbe *>> &probe_later);
  /* The entries visit() found, and the lowest and highest seq of each;
   * cleared by done(). */
  const std::vector<int> &found() const { return found_; }
  uint64_t first(int entry) const { return first_[entry]; }
  uint64_t best(int entry) const { return best_[entry]; }
  void note(int entry, uint64_t seq);
  void reserve(size_t more) { found_.reserve(found_.size() + more); }
  uint32 generation(int entry) const { return entries_[entry].generation; }
  void done();

 private:
  struct Indexed {
    bool live = false; /* of this database */
    uint32_t stamp = 0;
    uint32 generation = 0;
    size_t postings = 0;
    uint32_t guarded = 0; /* its interest's guarded() table */
  };
  void index(const EntryCopy &copy, const Interest &in);
  void post(Postings &list, int entry);
  void take(const Postings *list, const EventProbe &p,
            std::vector<std::pair<int, const EventProbe *>> *probe_later = nullptr);
  void compact();

  bool built_ = false;
  /* refresh()'s copies of the entries it reindexes, in chunks, and the
   * interests they point into: made once, not zeroed (a megabyte at the
   * default interest_size, which each batch's zeroing, page faults
   * included, put on the way to its wakes) */
  std::vector<EntryCopy> copies_;
  std::unique_ptr<char[]> buffer_;
  std::vector<Indexed> entries_;
  std::vector<uint64_t> first_, best_;
  std::vector<int> found_;
  std::unordered_map<uint64_t, Postings> by_token_;
  std::unordered_map<uint32_t, Postings> by_table_;  /* RELOAD markers */
  std::unordered_map<uint32_t, Postings> any_event_; /* wild, or without keys */
  std::unordered_map<uint32_t, Postings> in_place_;  /* keyed: a Bloom filter, or a range */
  std::map<std::pair<uint32_t, int16_t>, Postings> by_column_; /* events lacking it */
  std::unordered_map<uint32_t, std::vector<int16_t>> keyed_columns_;
  Postings every_;
  size_t postings_ = 0, stale_ = 0;
};

InterestIndex *the_index = nullptr;

template <typename Map, typename Key>
const typename Map::mapped_type *find(const Map &map, const Key &key) {
  auto it = map.find(key);
  return it == map.end() ? nullptr : &it->second;
}

/*
 * Reindexes the entries whose bit is set: those of this database (their
 * bits cleared), and those indexed as this database's that left it (their
 * bits left for their new database's worker); every entry of this
 * database at the first call.  Bits are read, cleared and the entries
 * copied under interest_lock, which taking and freeing an entry hold
 * exclusive: an entry cannot change databases in between, so a worker
 * never clears a bit that another database's worker needs.  In chunks:
 * the copies are made into memory allocated before the lock, and indexed
 * after it.
 */
void InterestIndex::refresh() {
  int n = settings.max_held_values;
  bool first = !built_;
  if (first) {
    entries_.assign(static_cast<size_t>(n), Indexed{});
    first_.assign(static_cast<size_t>(n), 0);
    best_.assign(static_cast<size_t>(n), 0);
    built_ = true;
  }
  constexpr size_t kChunk = 1024;
  size_t bytes = MAXALIGN(Interest::bytes(settings.interest_bytes * 8));
  if (!buffer_) {
    copies_.resize(kChunk);
    buffer_.reset(new char[bytes * kChunk + MAXIMUM_ALIGNOF]);
  }
  std::vector<EntryCopy> &copies = copies_;
  char *base = reinterpret_cast<char *>(MAXALIGN(buffer_.get()));
  int next = 0;
  while (next < n) {
    size_t count = 0;
    LWLockAcquire(shared->interest_lock, LW_SHARED);
    for (; next < n && count < kChunk; next++) {
      pg_atomic_uint64 *word = &interest_dirty[next / 64];
      if (!first && next % 64 == 0 && pg_atomic_read_u64(word) == 0) {
        next += 63; /* (the loop adds the 64th) */
        continue;
      }
      uint64 bit = 1ULL << (next % 64);
      bool dirty = pg_atomic_read_u64(word) & bit, mine = interest_dbs[next] == MyDatabaseId;
      bool left = !mine && entries_[static_cast<size_t>(next)].live;
      if (!(dirty && (mine || left)) && !(first && mine)) continue;
      if (dirty && mine) pg_atomic_fetch_and_u64(word, ~bit);
      InterestEntry *e = interest_entry(next);
      copies[count] = EntryCopy{next, interest_dbs[next], e->generation, count * bytes};
      if (mine)
        read_consistently(e, [&] {
          memcpy(base + count * bytes, &e->interest, Interest::bytes(settings.interest_bytes * 8));
          return true;
        });
      count++;
    }
    LWLockRelease(shared->interest_lock);
    for (size_t k = 0; k < count; k++)
      index(copies[k], *reinterpret_cast<const Interest *>(base + copies[k].offset));
  }
  if (stale_ > 4096 && stale_ > postings_ / 2) compact();
}

void InterestIndex::post(Postings &list, int entry) {
  Indexed &x = entries_[static_cast<size_t>(entry)];
  list.push_back(Posting{entry, x.stamp});
  x.postings++;
  postings_++;
}

/* An entry's postings, after its older ones went stale. */
void InterestIndex::index(const EntryCopy &copy, const Interest &in) {
  Indexed &x = entries_[static_cast<size_t>(copy.index)];
  stale_ += x.postings;
  x.postings = 0;
  x.stamp++;
  x.generation = copy.generation;
  x.live = copy.db == MyDatabaseId;
  x.guarded = x.live ? in.guarded() : 0; /* (else no interest was copied) */
  if (!x.live) return;
  int i = copy.index;
  if (in.every_event) return post(every_, i);
  int nt = std::clamp(in.ntables, 0, kInterestTables),
      nw = std::clamp(in.nwild, 0, kInterestTables);
  int nc = std::clamp(in.ncolumns, 0, kInterestColumns);
  for (int t = 0; t < nt; t++) {
    uint32_t relid = in.tables[t];
    post(by_table_[relid], i);
    bool wild = std::find(in.wild, in.wild + nw, relid) != in.wild + nw;
    bool keyed = std::any_of(in.columns, in.columns + nc,
                             [&](const InterestColumn &c) { return c.relid == relid; });
    int nr = std::clamp(in.nranges, 0, kInterestRanges);
    bool ranged = std::any_of(in.ranges, in.ranges + nr,
                              [&](const InterestRange &r) { return r.relid == relid; });
    if (wild || !keyed)
      post(any_event_[relid], i);
    else if (!in.exact || ranged)
      post(in_place_[relid], i);
  }
  for (int c = 0; c < nc; c++) {
    const InterestColumn &col = in.columns[c];
    post(by_column_[{col.relid, col.attnum}], i);
    std::vector<int16_t> &keyed = keyed_columns_[col.relid];
    if (std::find(keyed.begin(), keyed.end(), col.attnum) == keyed.end())
      keyed.push_back(col.attnum);
  }
  auto [tokens, n] = in.tokens();
  for (int k = 0; k < n; k++) post(by_token_[tokens[k]], i);
}

/* Drops the postings of older indexings. */
void InterestIndex::compact() {
  auto keep = [&](Postings &list) {
    list.erase(std::remove_if(list.begin(), list.end(),
                              [&](const Posting &q) {
                                const Indexed &x = entries_[static_cast<size_t>(q.entry)];
                                return !x.live || x.stamp != q.stamp;
                              }),
               list.end());
    return list.empty();
  };
  auto sweep = [&](auto &map) {
    for (auto it = map.begin(); it != map.end();) it = keep(it->second) ? map.erase(it) : ++it;
  };
  sweep(by_token_);
  sweep(by_table_);
  sweep(any_event_);
  sweep(in_place_);
  sweep(by_column_);
  keep(every_);
  keyed_columns_.clear();
  for (const auto &[column, list] : by_column_)
    keyed_columns_[column.first].push_back(column.second);
  postings_ -= stale_;
  stale_ = 0;
}

void InterestIndex::note(int entry, uint64_t seq) {
  uint64_t &b = best_[static_cast<size_t>(entry)];
  uint64_t &f = first_[static_cast<size_t>(entry)];
  if (b == 0) {
    found_.push_back(entry);
    f = seq;
  }
  b = std::max(b, seq);
  f = std::min(f, seq);
}

/* Notes the entries of list; with probe_later, those whose where guards
 * p's table go there, to be matched in place. */
void InterestIndex::take(const Postings *list, const EventProbe &p,
                         std::vector<std::pair<int, const EventProbe *>> *probe_later) {
  if (!list) return;
  for (const Posting &q : *list) {
    const Indexed &x = entries_[static_cast<size_t>(q.entry)];
    if (!x.live || x.stamp != q.stamp) continue;
    if (probe_later && x.guarded == p.relid)
      probe_later->emplace_back(q.entry, &p);
    else
      note(q.entry, p.seq);
  }
}

void InterestIndex::visit(const EventProbe &p,
                          std::vector<std::pair<int, const EventProbe *>> &probe_later) {
  take(&every_, p);
  if (p.reload) {
    if (p.relid != 0) return take(find(by_table_, p.relid), p);
    for (const auto &[relid, list] : by_table_) take(&list, p); /* every table */
    return;
  }
  take(find(any_event_, p.relid), p, &probe_later);
  /* a keyed column the event does not carry: it may matter */
  if (const auto *keyed = find(keyed_columns_, p.relid))
    for (int16_t attnum : *keyed)
      if (std::find(p.attnums.begin(), p.attnums.end(), attnum) == p.attnums.end())
        take(find(by_column_, std::make_pair(p.relid, attnum)), p, &probe_later);
  for (const auto &[attnum, token] : p.tokens) take(find(by_token_, token), p, &probe_later);
  if (const Postings *list = find(in_place_, p.relid))
    for (const Posting &q : *list) {
      const Indexed &x = entries_[static_cast<size_t>(q.entry)];
      if (x.live && x.stamp == q.stamp) probe_later.emplace_back(q.entry, &p);
    }
}

void InterestIndex::done() {
  for (int i : found_) best_[static_cast<size_t>(i)] = 0;
  found_.clear();
}

/*
 * Puts entry i in the wake queue of its holder (counted before its latch
 * is set); a full queue is marked overflowed: the holder looks at all its
 * values, and takes every one of its entries out of the queue again.
 */
void queue_wake(int waker, int i) {
  if (waker < 0 || waker >= MaxBackends) return;
  WakeQueue *q = &wake_queues[waker];
  SpinLockAcquire(&q->mutex);
  if (q->count < kWakeQueueSize)
    q->entries[q->count++] = i;
  else
    q->overflowed = true;
  SpinLockRelease(&q->mutex);
}

/* Whether e's interest, read in place, matches p (see interest_publish()). */
bool matches_in_place(InterestEntry *e, const EventProbe &p) {
  return read_consistently(e, [&] { return e->interest.matches(p); });
}

}  // namespace

void interest_match(const std::vector<Event> &events, std::vector<InterestHit> &hits) {
  hits.clear();
  if (!interests || events.empty()) return;
  if (!the_index) the_index = new InterestIndex();
  InterestIndex &index = *the_index;
  /* Each event's tokens are hashed once, not once per interest. */
  std::vector<EventProbe> probes;
  probes.reserve(events.size());
  for (const Event &ev : events) probes.push_back(probe_of(ev));
  std::vector<std::pair<int, const EventProbe *>> probe_later;
  try {
    index.refresh();
    for (const EventProbe &p : probes) index.visit(p, probe_later);
    /* no allocation under the lock */
    index.reserve(probe_later.size());
    hits.reserve(index.found().size() + probe_later.size());
  } catch (...) {
    /* Dirty bits it cleared are lost with it: the next batch indexes
     * every entry again. */
    delete the_index;
    the_index = nullptr;
    throw;
  }
  LWLockAcquire(shared->interest_lock, LW_SHARED);
  for (const auto &[i, p] : probe_later)
    if (interest_dbs[i] == MyDatabaseId && matches_in_place(interest_entry(i), *p))
      index.note(i, p->seq);
  for (int i : index.found()) {
    InterestEntry *e = interest_entry(i);
    /* (an entry freed or taken again since it was indexed: its new
     * holder trusts it only for later events) */
    if (interest_dbs[i] != MyDatabaseId || e->generation != index.generation(i)) continue;
    uint64 seq = index.best(i);
    SpinLockAcquire(&e->mutex);
    int ring = (int)(e->notifications++ % kMatchedBatches);
    e->batch_first[ring] = index.first(i);
    e->batch_last[ring] = seq;
    bool queue = !e->queued;
    e->queued = true;
    SpinLockRelease(&e->mutex);
    if (queue) queue_wake(e->waker, i);
    hits.push_back(InterestHit{i, e->generation, seq, e->latch, e->listening, e->session_listening,
                               e->pid, e->session_tag});
  }
  LWLockRelease(shared->interest_lock);
  index.done();
}

}  // namespace ectosync

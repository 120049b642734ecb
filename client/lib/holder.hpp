/*
 * holder.hpp: the reference ecto_sync client.
 *
 * A Holder keeps one value (table, assocs, filter) up to date over its own
 * connection.  The ectosync way (Mode::Held) holds the value in the server
 * session too:
 *
 *   start():  SELECT ectosync.hold(name, tbl, assocs, filter, listen => false)
 *             -- load and keep; version 0
 *   pump():   SELECT ectosync.wait_changes(name, version, timeout)
 *             -- returns as soon as an event changed the value (the worker
 *             wakes this backend only: no LISTEN, whose every notifying
 *             commit wakes every listener of the database), or at the
 *             timeout: {"version", "seq", "patch", "events"}, a JSON Patch
 *             applied to the local copy (patch.hpp); a patch that replaces the
 *             whole value ("path": "") is the server's reload;
 *             the connection broke -> reconnect and hold again.
 *
 * The value crosses the wire once, at hold(); then only what changed.
 *
 * Stateless: LISTEN before load is the one safe order: an event committed
 * after the load's snapshot is notified to us (we listen already); an event
 * before it is already in the value (events with seq <= value.seq are
 * skipped).  (Held values need no order: wait_changes() reads the event log
 * from the value's seq.)
 *
 * Modes, for comparisons:
 *   Sync       the ectosync way (above);
 *   Stateless  value := ectosync.sync(value, payload) per notification, the
 *              value sent and returned each time; SQLSTATE ZE001 -> load;
 *   Reload     re-run load() on every batch of notifications (alternative a);
 *   Requery    like Reload, but listening to per-row pg_notify channels of a
 *              plain plpgsql trigger ("ectowatch_<relid>", alternative b).
 */
#pragma once

#include "core/json.hpp"
#include "patch.hpp"
#include "pg.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace ectosync {

using Clock = pg::Clock;

/*
 * When did the change behind an event commit?  Writers record, right after
 * each COMMIT (in the same round trip), the server's last event seq; the
 * commit time of seq s is bounded by the earliest record whose seq >= s.
 * Also maps transaction ids to commit times (for the pg_notify baseline,
 * whose payloads carry txid_current()).
 */
class CommitLog {
 public:
  void record_seq(uint64_t last_seq, Clock::time_point committed);
  std::optional<Clock::time_point> seq_time(uint64_t seq) const;
  void record_txid(uint64_t txid, Clock::time_point committed);
  std::optional<Clock::time_point> txid_time(uint64_t txid) const;
  void clear();

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, Clock::time_point> by_seq_; /* keys and times both increasing */
  std::map<uint64_t, Clock::time_point> by_txid_;
  /* seq_time()'s answers remembered per thread are this log's, and of
   * this generation of it (clear() starts another) */
  static std::atomic<uint64_t> generations_;
  std::atomic<uint64_t> generation_{++generations_};
};

class Hub;

struct HolderOptions {
  std::string conninfo; /* "" = PG* environment */
  /* Share this hub's connection with other holders (hub.hpp); nullptr: a
   * connection of its own. */
  Hub *hub = nullptr;
  std::string table;         /* regclass text, e.g. "posts" */
  std::string assocs = "[]"; /* JSON spec */
  std::string filter;        /* JSON object, "" = none */
  enum class Mode { Held, Stateless, Reload, Requery } mode = Mode::Held;
  int max_batch = 128;                /* Stateless: notifications synced per round trip */
  int reconnect_timeout_ms = 30000;   /* give up reconnecting after this */
  const CommitLog *commits = nullptr; /* to record commit-to-synced latency */
  std::string name;                   /* for messages */
};

struct HolderStats {
  int64_t notifications = 0; /* received (held values: events that changed them) */
  int64_t syncs = 0;         /* events passed to sync(), or that changed a held value */
  int64_t patches = 0;       /* changes() replies that changed the value */
  int64_t skipped = 0;       /* events the value already reflected (after a reload) */
  int64_t reloads = 0;       /* load() calls after the first */
  int64_t reloads_ze001 =
      0; /* ... of which forced: sync() said ZE001, or changes() sent the whole value */
  int64_t reconnects = 0;
  int64_t round_trips = 0;
  std::vector<double> latency_us; /* commit-to-synced, when commit times are known */
};

class Holder {
 public:
  explicit Holder(HolderOptions options);

  /* Connect, subscribe, load.  Throws on failure. */
  void start();
  /*
   * Handle the notifications that arrive within timeout (returns after the
   * first batch, or at the timeout).  Returns the notifications handled.
   * Reconnects (bounded by reconnect_timeout_ms) when the connection broke.
   */
  int pump(std::chrono::milliseconds timeout);
  /* Handle notifications until none came for quiet, or until timeout. */
  void drain(std::chrono::milliseconds quiet, std::chrono::milliseconds timeout);
  /* The held value equals a fresh load (ignoring "seq" and "seal")?  Asks the server. */
  bool matches_fresh_load();
  /* Keep draining until the value equals a fresh load, up to timeout. */
  bool converge(std::chrono::milliseconds timeout);
  /* Reload now (e.g. after losing notifications on purpose). */
  void reload();

  /* The held value as JSON text. */
  std::string value() const {
    return opts_.mode == HolderOptions::Mode::Held ? json_dump(*doc_) : value_;
  }
  const std::string &epoch() const { return epoch_; }
  const HolderStats &stats() const { return stats_; }
  const HolderOptions &options() const { return opts_; }
  /* The value's rows, counted by the server. */
  int64_t row_count();
  /* Describe the value's shape: "posts ["tags"] filter {...}". */
  std::string describe() const;
  /* Its own connection, or its hub's. */
  pg::Connection &connection() { return opts_.hub ? hub_connection() : *conn_; }
  /* Held mode: the server's version that value() is. */
  int64_t version() const { return version_; }
  /* Held mode: one row of wait_changes(timeout) (or a changes() reply) for
   * this value, applied: patch, compiled as compiled (which the holders of
   * one shared value share).  1 when it changed the value.
   *
   * The document may be shared with other holders of a hub that hold the
   * same value (Hub::pump_held): it is patched in place only if no other
   * holder uses it, or if in_place says that every holder using it gets
   * this patch now; else a copy is patched.  made, if not null, is the
   * document this reply makes, patched already for another holder.  -1:
   * the patch failed, and the value was held again. */
  int apply_reply(const Json &patch, CompiledPatch &compiled, int64_t version, uint64_t seq,
                  const Json *events, bool in_place = false,
                  const std::shared_ptr<Json> &made = nullptr);
  /* Held mode: the document, which holders of a hub may share. */
  const std::shared_ptr<Json> &document() const { return doc_; }
  /* Reload and Requery on a hub: the notifications of its channels. */
  void notified(std::vector<pg::Notification> batch);
  /* Hold again, or subscribe and load again, on a new connection. */
  void restart(bool counted);
  /* The name the value is held under in the session. */
  std::string held_name() const;

 private:
  pg::Connection &hub_connection();
  void connect();
  void subscribe();
  void load(bool counted);
  void handle(std::vector<pg::Notification> &batch);
  int handle_held(std::chrono::milliseconds timeout);
  void note_latency_seq(uint64_t seq);
  void hold(bool counted);
  void held_epoch();
  void reconnect_and_reload();
  void note_latency(const pg::Notification &n);
  pg::Param filter_param() const;

  HolderOptions opts_;
  std::unique_ptr<pg::Connection> conn_;
  std::string value_, epoch_; /* Stateless, Reload, Requery: the value as text */
  uint64_t seq_ = 0;
  std::shared_ptr<Json> doc_ = std::make_shared<Json>(); /* Sync: the value */
  int64_t version_ = 0;               /* Sync: the held value's version that doc_ is */
  std::vector<std::string> channels_; /* what it LISTENs to (Reload, Requery) */
  HolderStats stats_;
};

/* SQLSTATE of "the value must be reloaded". */
inline constexpr const char *kReloadState = "ZE001";

}  // namespace ectosync

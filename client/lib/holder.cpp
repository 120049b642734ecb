#include "holder.hpp"

#include "hub.hpp"

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace ectosync {

void CommitLog::record_seq(uint64_t last_seq, Clock::time_point committed) {
  std::lock_guard<std::mutex> lock(mu_);
  /* An existing record with a seq >= last_seq was made earlier: it bounds better. */
  auto it = by_seq_.lower_bound(last_seq);
  if (it != by_seq_.end()) return;
  by_seq_.emplace(last_seq, committed);
}

std::optional<Clock::time_point> CommitLog::seq_time(uint64_t seq) const {
  /* The answer for a seq never changes once there is one: records only
   * come with higher seqs (record_seq()).  A hub applies one reply's few
   * seqs to hundreds of holders: each thread remembers its last answer,
   * rather than taking the lock the writers record under each time. */
  struct Last {
    uint64_t generation = 0, seq = 0;
    Clock::time_point time;
  };
  thread_local Last last;
  uint64_t generation = generation_.load();
  if (last.generation == generation && last.seq == seq) return last.time;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_seq_.lower_bound(seq);
  if (it == by_seq_.end()) return std::nullopt;
  last = Last{generation, seq, it->second};
  return it->second;
}

void CommitLog::record_txid(uint64_t txid, Clock::time_point committed) {
  std::lock_guard<std::mutex> lock(mu_);
  by_txid_.emplace(txid, committed);
}

std::optional<Clock::time_point> CommitLog::txid_time(uint64_t txid) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_txid_.find(txid);
  if (it == by_txid_.end()) return std::nullopt;
  return it->second;
}

std::atomic<uint64_t> CommitLog::generations_{0};

void CommitLog::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  generation_ = ++generations_;
  by_seq_.clear();
  by_txid_.clear();
}

Holder::Holder(HolderOptions options) : opts_(std::move(options)) {}

std::string Holder::describe() const {
  std::string d = opts_.table + " " + opts_.assocs;
  if (!opts_.filter.empty()) d += " filter " + opts_.filter;
  return d;
}

pg::Param Holder::filter_param() const {
  if (opts_.filter.empty()) return std::nullopt;
  return opts_.filter;
}

void Holder::connect() {
  if (!opts_.hub) conn_ = std::make_unique<pg::Connection>(opts_.conninfo, "ectosync holder");
}

pg::Connection &Holder::hub_connection() {
  return opts_.hub->connection();
}

void Holder::subscribe() {
  auto r = connection().exec("SELECT c FROM ectosync.channels($1::regclass, $2::jsonb) c",
                             {opts_.table, opts_.assocs});
  channels_.clear();
  std::string sql;
  for (int i = 0; i < r.rows(); i++) {
    std::string ch = r.str(i, 0);
    if (opts_.mode == HolderOptions::Mode::Requery) ch = "ectowatch" + ch.substr(ch.find('_'));
    channels_.push_back(ch);
    sql += "LISTEN " + connection().quote_ident(ch) + ";";
  }
  if (!sql.empty()) connection().exec(sql);
  stats_.round_trips++;
}

void Holder::load(bool counted) {
  auto r = connection().exec(
      "SELECT v::text, (v->>'seq')::bigint, v->>'epoch' FROM (SELECT ectosync.load($1::regclass, "
      "$2::jsonb, $3::jsonb) AS v) s",
      {opts_.table, opts_.assocs, filter_param()});
  stats_.round_trips++;
  value_ = r.str(0, 0);
  seq_ = r.is_null(0, 1) ? 0 : static_cast<uint64_t>(r.i64(0, 1));
  epoch_ = r.str(0, 2);
  if (counted) stats_.reloads++;
}

/* Sync mode: LISTEN, load and keep the value in the session (version 0). */
void Holder::hold(bool counted) {
  auto r = connection().exec(
      "SELECT ectosync.hold($1, $2::regclass, $3::jsonb, $4::jsonb, listen => false)::text",
      {held_name(), opts_.table, opts_.assocs, filter_param()});
  stats_.round_trips++;
  doc_ = opts_.hub ? opts_.hub->document(r.str(0, 0))
                   : std::make_shared<Json>(parse_json(r.str(0, 0)));
  version_ = 0;
  held_epoch();
  if (counted) stats_.reloads++;
}

/* Connect, then hold the value or (other modes) subscribe and load it. */
void Holder::start() {
  connect();
  if (opts_.mode == HolderOptions::Mode::Held) {
    hold(false);
  } else {
    subscribe();
    load(false);
  }
}

void Holder::restart(bool counted) {
  if (opts_.mode == HolderOptions::Mode::Held) {
    version_ = -1; /* none the server has, until hold() succeeds: the next
                    * reply then fetches the whole value */
    hold(counted);
  } else {
    subscribe();
    load(counted);
  }
}

void Holder::reload() {
  if (opts_.mode == HolderOptions::Mode::Held)
    hold(true);
  else
    load(true);
}

void Holder::reconnect_and_reload() {
  if (opts_.hub) {
    opts_.hub->reconnect();
    return;
  }
  auto deadline = Clock::now() + std::chrono::milliseconds(opts_.reconnect_timeout_ms);
  std::string last_error;
  for (int attempt = 0;; attempt++) {
    try {
      start();
      stats_.reloads++;
      stats_.reconnects++;
      return;
    } catch (const pg::Error &e) {
      last_error = e.what();
    }
    if (Clock::now() >= deadline)
      throw pg::ConnectionLost("holder " + opts_.name + ": could not reconnect within " +
                               std::to_string(opts_.reconnect_timeout_ms) + " ms: " + last_error);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50 * (attempt + 1), 500)));
  }
}

/* Commit-to-synced of the event seq (the held value reflects it now). */
void Holder::note_latency_seq(uint64_t seq) {
  std::optional<Clock::time_point> committed = opts_.commits->seq_time(seq);
  if (!committed) return;
  auto us = std::chrono::duration<double, std::micro>(Clock::now() - *committed).count();
  stats_.latency_us.push_back(us < 0 ? 0 : us);
}

void Holder::note_latency(const pg::Notification &n) {
  if (!opts_.commits) return;
  std::optional<Clock::time_point> committed;
  if (opts_.mode == HolderOptions::Mode::Requery) {
    auto txid = pg::json_string_member(n.payload, "txid");
    if (txid) committed = opts_.commits->txid_time(std::strtoull(txid->c_str(), nullptr, 10));
  } else {
    auto event = pg::json_string_member(n.payload, "event");
    if (event) {
      auto colon = event->find(':');
      if (colon != std::string::npos)
        committed = opts_.commits->seq_time(std::strtoull(event->c_str() + colon + 1, nullptr, 10));
    }
  }
  if (committed) {
    auto us = std::chrono::duration<double, std::micro>(Clock::now() - *committed).count();
    stats_.latency_us.push_back(us < 0 ? 0 : us);
  }
}

/*
 * Sync mode: one changes() call covers every notification received (and
 * any event the worker loaded since); its patch is applied to doc_.
 */
int Holder::handle_held(std::chrono::milliseconds timeout) {
  auto r = connection().exec_prepared(
      "SELECT ectosync.wait_changes($1, $2, $3)::text",
      {held_name(), std::to_string(version_), std::to_string(timeout.count())});
  stats_.round_trips++;
  Json reply = parse_json(r.str(0, 0));
  const Json *patch = reply.find("patch"), *version = reply.find("version"),
             *seq = reply.find("seq"), *events = reply.find("events");
  if (!patch || !version || !seq)
    throw pg::Error(
        "holder " + opts_.name + ": wait_changes() replied " + r.str(0, 0).substr(0, 200), "");
  std::optional<CompiledPatch> compiled;
  try {
    compiled.emplace(*patch);
  } catch (const PatchError &) {
    hold(true); /* cannot happen with the server's patches; recover anyway */
    return 1;
  }
  int changed =
      apply_reply(*patch, *compiled, std::stoll(version->text), std::stoull(seq->text), events);
  return changed < 0 ? 1 : changed;
}

int Holder::apply_reply(const Json &patch_json, CompiledPatch &compiled, int64_t version,
                        uint64_t seq, const Json *events, bool in_place,
                        const std::shared_ptr<Json> &made) {
  const Json *patch = &patch_json;
  if (patch->items.empty()) {
    version_ = version;
    seq_ = seq;
    return 0;
  }
  const Json *path = patch->items[0].find("path");
  bool whole = path && path->text.empty();
  try {
    if (made) {
      doc_ = made;
    } else {
      if (!in_place && doc_.use_count() > 1) doc_ = std::make_shared<Json>(*doc_);
      compiled.apply(*doc_);
    }
  } catch (const PatchError &) {
    /* Cannot happen with the server's patches; recover anyway.  (A
     * document patched in place is partly patched for the holders that
     * share it too: -1 tells the hub to hold theirs again.)  Until hold()
     * succeeds the version is none the server has: if it fails, the next
     * reply finds the holder behind and fetches the whole value. */
    version_ = -1;
    hold(true);
    return -1;
  }
  version_ = version;
  seq_ = seq;
  if (whole) {
    stats_.reloads++; /* the server reloaded the value (or we had missed a reply) */
    stats_.reloads_ze001++;
    held_epoch();
  }
  stats_.patches++;
  int64_t n = events ? static_cast<int64_t>(events->items.size()) : 0;
  stats_.notifications += n;
  stats_.syncs += n;
  if (opts_.commits && events)
    for (const Json &e : events->items) note_latency_seq(std::stoull(e.text));
  return 1;
}

/* Sync mode: the epoch of the value held (events of other epochs are news). */
void Holder::held_epoch() {
  const Json *epoch = doc_->find("epoch");
  epoch_ = epoch ? epoch->text : "";
  const Json *seq = doc_->find("seq");
  seq_ = seq ? std::stoull(seq->text) : 0;
}

void Holder::handle(std::vector<pg::Notification> &batch) {
  stats_.notifications += static_cast<int64_t>(batch.size());
  if (opts_.mode == HolderOptions::Mode::Reload || opts_.mode == HolderOptions::Mode::Requery) {
    load(true);
    for (const auto &n : batch) note_latency(n);
    return;
  }
  /* events the value already reflects (same epoch, seq <= value seq) need no round trip */
  batch.erase(std::remove_if(batch.begin(), batch.end(),
                             [&](const pg::Notification &n) {
                               auto event = pg::json_string_member(n.payload, "event");
                               if (!event) return false;
                               auto colon = event->find(':');
                               if (colon == std::string::npos || event->compare(0, colon, epoch_))
                                 return false;
                               if (std::strtoull(event->c_str() + colon + 1, nullptr, 10) > seq_)
                                 return false;
                               stats_.skipped++;
                               return true;
                             }),
              batch.end());
  if (batch.empty()) return;
  size_t i = 0;
  while (i < batch.size()) {
    size_t n = std::min(batch.size() - i, static_cast<size_t>(std::max(1, opts_.max_batch)));
    std::string expr = "$1::jsonb";
    std::vector<pg::Param> params{value_};
    for (size_t k = 0; k < n; k++) {
      params.push_back(batch[i + k].payload);
      expr = "ectosync.sync(" + expr + ", $" + std::to_string(k + 2) + "::text)";
    }
    try {
      auto r = connection().exec(
          "SELECT v::text, (v->>'seq')::bigint, v->>'epoch' FROM (SELECT " + expr + " AS v) s",
          params);
      stats_.round_trips++;
      stats_.syncs += static_cast<int64_t>(n);
      value_ = r.str(0, 0);
      seq_ = r.is_null(0, 1) ? 0 : static_cast<uint64_t>(r.i64(0, 1));
      epoch_ = r.str(0, 2);
    } catch (const pg::ConnectionLost &) {
      throw;
    } catch (const pg::Error &e) {
      if (e.sqlstate() != kReloadState) throw;
      stats_.round_trips++;
      stats_.reloads_ze001++;
      load(true); /* covers the rest of the batch too */
      for (size_t k = i; k < batch.size(); k++) note_latency(batch[k]);
      return;
    }
    for (size_t k = 0; k < n; k++) note_latency(batch[i + k]);
    i += n;
  }
}

/* Reload and Requery on a hub: the hub's notifications, of this holder's channels. */
void Holder::notified(std::vector<pg::Notification> batch) {
  batch.erase(std::remove_if(batch.begin(), batch.end(),
                             [&](const pg::Notification &n) {
                               return std::find(channels_.begin(), channels_.end(), n.channel) ==
                                      channels_.end();
                             }),
              batch.end());
  if (!batch.empty()) handle(batch);
}

int Holder::pump(std::chrono::milliseconds timeout) {
  if (opts_.hub) return opts_.hub->pump(timeout);
  try {
    if (!conn_ || !connection().ok()) throw pg::ConnectionLost("not connected");
    if (opts_.mode == HolderOptions::Mode::Held) return handle_held(timeout);
    auto first = connection().wait_notification(timeout);
    if (!first) return 0;
    std::vector<pg::Notification> batch{std::move(*first)};
    for (auto &n : connection().take_notifications()) batch.push_back(std::move(n));
    handle(batch);
    return static_cast<int>(batch.size());
  } catch (const pg::ConnectionLost &) {
    reconnect_and_reload();
    return 0;
  }
}

void Holder::drain(std::chrono::milliseconds quiet, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (pump(quiet) == 0) return;
  }
}

bool Holder::matches_fresh_load() {
  for (int attempt = 0;; attempt++) {
    try {
      auto r = connection().exec(
          /* (a held value has no seal; a synced one's covers its seq) */
          "SELECT ($1::jsonb - 'seq' - 'seal') = (ectosync.load($2::regclass, $3::jsonb, "
          "$4::jsonb) - 'seq' - 'seal')",
          {value(), opts_.table, opts_.assocs, filter_param()});
      return r.boolean(0, 0);
    } catch (const pg::ConnectionLost &) {
      if (attempt > 0) throw;
      reconnect_and_reload();
    }
  }
}

bool Holder::converge(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
  for (;;) {
    /* the worker has notified everything queued so far; then read it all */
    if (opts_.mode != HolderOptions::Mode::Requery) {
      try {
        connection().exec("SELECT ectosync.wait_for_worker($1::int)", {std::to_string(wait_ms)});
      } catch (const pg::ConnectionLost &) {
        reconnect_and_reload();
      }
    }
    drain(std::chrono::milliseconds(150), timeout);
    if (matches_fresh_load()) return true;
    if (Clock::now() >= deadline) return false;
    pump(std::chrono::milliseconds(100));
  }
}

int64_t Holder::row_count() {
  auto r = connection().exec("SELECT jsonb_array_length($1::jsonb->'rows')", {value()});
  return r.i64(0, 0);
}

std::string Holder::held_name() const {
  return opts_.name.empty() ? "value" : opts_.name;
}

}  // namespace ectosync

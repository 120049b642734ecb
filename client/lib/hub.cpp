/*
 * hub.cpp: many held values over one connection (see hub.hpp).
 */
#include "hub.hpp"

#include <thread>
#include <unordered_map>

namespace ectosync {

Hub::Hub(std::string conninfo, HolderOptions::Mode mode)
    : conninfo_(std::move(conninfo)), mode_(mode) {}

pg::Connection &Hub::connection() {
  if (!conn_) conn_ = std::make_unique<pg::Connection>(conninfo_, "ectosync hub");
  return *conn_;
}

void Hub::add(Holder &holder, std::function<void(Holder &)> on_change) {
  std::string name = holder.held_name();
  if (holders_.count(name))
    throw std::invalid_argument("hub: a value is held as \"" + name + "\" already");
  holders_[name] = Entry{&holder, std::move(on_change)};
  try {
    holder.start();
  } catch (...) {
    holders_.erase(name);
    throw;
  }
}

void Hub::remove(Holder &holder) {
  std::string name = holder.held_name();
  if (!holders_.erase(name)) return;
  if (mode_ == HolderOptions::Mode::Held) connection().exec("SELECT ectosync.release($1)", {name});
}

int Hub::pump(std::chrono::milliseconds timeout) {
  try {
    if (!connection().ok()) throw pg::ConnectionLost("not connected");
    return mode_ == HolderOptions::Mode::Held ? pump_held(timeout) : pump_notified(timeout);
  } catch (const pg::ConnectionLost &) {
    reconnect();
    return 0;
  }
}

/* One wait_changes() for every value of the session. */
int Hub::pump_held(std::chrono::milliseconds timeout) {
  auto r = connection().exec_prepared(
      "SELECT name, version, seq, patch::text, events::text, error, since_version "
      "FROM ectosync.wait_changes($1)",
      {std::to_string(timeout.count())});
  round_trips_++;
  int changed = 0;
  /* Values that share a value on the server get the same patch text:
   * parsed once per reply. */
  std::unordered_map<std::string, Json> parsed;
  auto parse_once = [&](std::string text) -> const Json & {
    auto it = parsed.find(text);
    if (it == parsed.end()) {
      Json json = parse_json(text);
      it = parsed.emplace(std::move(text), std::move(json)).first;
    }
    return it->second;
  };
  for (int i = 0; i < r.rows(); i++) {
    auto it = holders_.find(r.str(i, 0));
    if (it == holders_.end()) continue; /* (released meanwhile) */
    if (!r.is_null(i, 5)) {             /* this value alone failed: the others go on */
      errors_[r.str(i, 0)] = r.str(i, 5);
      continue;
    }
    Holder &holder = *it->second.holder;
    const Json *patch = &parse_once(r.str(i, 3));
    const Json &events = parse_once(r.str(i, 4));
    int64_t version = r.i64(i, 1);
    Json whole_patch;
    if (r.i64(i, 6) != holder.version()) {
      /* A reply went missing (a call that failed after the server moved the
       * value on): from our version the server sends the whole value. */
      auto whole = connection().exec("SELECT ectosync.changes($1, $2)::text",
                                     {it->first, std::to_string(holder.version())});
      round_trips_++;
      Json reply = parse_json(whole.str(0, 0));
      whole_patch = *reply.find("patch");
      patch = &whole_patch;
      version = std::stoll(reply.find("version")->text);
    }
    if (holder.apply_reply(*patch, version, static_cast<uint64_t>(r.i64(i, 2)), &events) > 0) {
      changed++;
      if (it->second.on_change) it->second.on_change(holder);
    }
  }
  return changed;
}

/* Reload and Requery: each holder reloads on the notifications of its channels. */
int Hub::pump_notified(std::chrono::milliseconds timeout) {
  auto first = connection().wait_notification(timeout);
  if (!first) return 0;
  std::vector<pg::Notification> batch{std::move(*first)};
  for (auto &n : connection().take_notifications()) batch.push_back(std::move(n));
  for (auto &[name, entry] : holders_) {
    int64_t before = entry.holder->stats().reloads;
    entry.holder->notified(batch);
    if (entry.on_change && entry.holder->stats().reloads != before) entry.on_change(*entry.holder);
  }
  return static_cast<int>(batch.size());
}

void Hub::reconnect() {
  for (int attempt = 0;; attempt++) {
    try {
      conn_ = std::make_unique<pg::Connection>(conninfo_, "ectosync hub");
      for (auto &[name, entry] : holders_) entry.holder->restart(true);
      reconnects_++;
      return;
    } catch (const pg::Error &) {
      if (attempt >= 60) throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50 * (attempt + 1), 500)));
  }
}

}  // namespace ectosync

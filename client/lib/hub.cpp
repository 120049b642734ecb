/*
 * hub.cpp: many held values over one connection (see hub.hpp).
 */
#include "hub.hpp"

#include <memory>
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
  auto name = std::make_unique<const std::string>(holder.held_name());
  if (holders_.count(*name))
    throw std::invalid_argument("hub: a value is held as \"" + *name + "\" already");
  std::string_view key = *name;
  holders_.emplace(key, Entry{std::move(name), &holder, std::move(on_change)});
  membership_++;
  try {
    holder.start();
  } catch (...) {
    holders_.erase(key);
    throw;
  }
}

void Hub::remove(Holder &holder) {
  std::string name = holder.held_name();
  clear_error(name);
  unheld_.erase(name);
  if (!holders_.erase(name)) return;
  membership_++;
  if (mode_ == HolderOptions::Mode::Held) connection().exec("SELECT ectosync.release($1)", {name});
}

void Hub::set_error(std::string_view name, std::string error) {
  auto it = errors_.find(name);
  if (it == errors_.end())
    errors_.emplace(std::string(name), std::move(error));
  else
    it->second = std::move(error);
}

void Hub::clear_error(std::string_view name) {
  if (errors_.empty()) return;
  auto it = errors_.find(name);
  if (it != errors_.end()) errors_.erase(it);
}

int Hub::pump(std::chrono::milliseconds timeout) {
  try {
    if (lost_ || !connection().ok()) throw pg::ConnectionLost("not connected");
    int held_again = hold_again();
    return held_again +
           (mode_ == HolderOptions::Mode::Held ? pump_held(timeout) : pump_notified(timeout));
  } catch (const pg::ConnectionLost &) {
    reconnect();
    return 0;
  }
}

/*
 * Holds it->second's value again (or loads it); false, with the error kept, when
 * that fails other than by the connection (its table gone, its role no
 * longer allowed, a value nested deeper than this client parses).
 */
bool Hub::restart(Holders::iterator it) {
  try {
    it->second.holder->restart(true);
    clear_error(it->first);
    return true;
  } catch (const pg::ConnectionLost &) {
    throw;
  } catch (const pg::Error &e) {
    set_error(it->first, e.what());
  } catch (const JsonError &e) {
    set_error(it->first, e.what());
  }
  return false;
}

/*
 * The values a reconnect could not hold again (the new session does not
 * hold them: no reply will name them): each pump() tries once more, and a
 * value held again runs its callback.  The number held again.
 */
int Hub::hold_again() {
  if (unheld_.empty()) return 0;
  std::vector<std::string> names;
  std::vector<Holders::iterator> found;
  for (auto name = unheld_.begin(); name != unheld_.end();) {
    auto it = holders_.find(*name);
    if (it == holders_.end()) {
      name = unheld_.erase(name);
      continue;
    }
    if (!restart(it)) {
      ++name;
      continue;
    }
    names.push_back(*name);
    found.push_back(it);
    name = unheld_.erase(name);
  }
  call_back(pairs(names, found));
  return static_cast<int>(names.size());
}

/* names[k] with found[k], for call_back() (views into names). */
std::vector<std::pair<std::string_view, Hub::Holders::iterator>> Hub::pairs(
    const std::vector<std::string> &names, const std::vector<Holders::iterator> &found) {
  std::vector<std::pair<std::string_view, Holders::iterator>> out;
  for (size_t k = 0; k < names.size(); k++) out.emplace_back(names[k], found[k]);
  return out;
}

/*
 * Runs the callbacks of the holders that changed, once every change of the
 * reply is applied: a callback that throws then leaves no value behind.
 * Each runs; the first exception is rethrown after the last.
 */
void Hub::call_back(const std::vector<std::pair<std::string_view, Holders::iterator>> &changed) {
  std::exception_ptr first;
  uint64_t membership = membership_;
  for (const auto &[name, found] : changed) {
    auto it = membership_ == membership ? found : holders_.find(name);
    if (it == holders_.end() || !it->second.on_change) continue; /* (removed by a callback) */
    /* (a copy: a callback that removes its own holder destroys the
     * entry's function while it runs) */
    std::function<void(Holder &)> on_change = it->second.on_change;
    try {
      on_change(*it->second.holder);
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

/* One wait_changes() for every value of the session. */
int Hub::pump_held(std::chrono::milliseconds timeout) {
  auto r = connection().exec_prepared(
      "SELECT name, version, seq, patch::text, events::text, error, since_version, same_as "
      "FROM ectosync.wait_changes($1, patch_once => true)",
      {std::to_string(timeout.count())});
  round_trips_++;
  int changed = 0;
  /* Names of one shared value get its patch once: the others name that
   * row (same_as).  Row i's patch and events are those of row source[i]. */
  std::vector<int> source(static_cast<size_t>(r.rows()));
  {
    std::unordered_map<std::string_view, int> row_of; /* (views into r) */
    for (int i = 0; i < r.rows(); i++) {
      row_of.emplace(r.get(i, 0), i);
      auto first = r.is_null(i, 7) ? row_of.end() : row_of.find(r.get(i, 7));
      source[static_cast<size_t>(i)] = first == row_of.end() ? i : first->second;
    }
  }
  /* A patch or events column, parsed (and a patch compiled) once per
   * reply: per row it comes from, and per text (values that the server
   * does not share may still get equal patches). */
  struct Parsed {
    Json json;
    std::unique_ptr<CompiledPatch> compiled; /* (points into json: made in place) */
  };
  std::unordered_map<std::string, Parsed> parsed;
  std::map<std::pair<int, int>, Parsed *> parsed_of;
  auto parse_once = [&](int i, int column) -> Parsed & {
    Parsed *&p = parsed_of[{source[static_cast<size_t>(i)], column}];
    if (!p) {
      std::string text = r.str(source[static_cast<size_t>(i)], column);
      auto it = parsed.find(text);
      if (it == parsed.end()) {
        Json json = parse_json(text);
        it = parsed.emplace(std::move(text), Parsed{std::move(json), nullptr}).first;
      }
      p = &it->second;
    }
    return *p;
  };
  /* A document moved by one patch: how many of this reply's holders move
   * it so, and what it became (once one of them has moved it). */
  struct Move {
    long holders = 0;
    std::shared_ptr<Json> made;
    bool failed = false;
  };
  std::map<std::pair<const Json *, const Parsed *>, Move> moves;
  /* Each row's holder, found once (a reply may name thousands). */
  std::vector<Holders::iterator> entry_of;
  entry_of.reserve(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); i++) entry_of.push_back(holders_.find(r.get(i, 0)));
  for (int i = 0; i < r.rows(); i++) {
    auto it = entry_of[static_cast<size_t>(i)];
    if (it == holders_.end() || !r.is_null(i, 5)) continue;
    if (Holder *h = it->second.holder; r.i64(i, 6) == h->version()) try {
        moves[{h->document().get(), &parse_once(i, 3)}].holders++;
      } catch (const JsonError &) {
        /* (the loop below gives it the error) */
      }
  }
  std::vector<std::pair<std::string_view, Holders::iterator>> changed_holders;
  for (int i = 0; i < r.rows(); i++) {
    /* (the iterators stay valid: nothing in this loop adds or removes
     * holders; the callbacks run after it) */
    auto it = entry_of[static_cast<size_t>(i)];
    if (it == holders_.end()) continue; /* (not this hub's when the reply came) */
    if (!r.is_null(i, 5)) {             /* this value alone failed: the others go on */
      set_error(it->first, r.str(i, 5));
      continue;
    }
    clear_error(it->first);
    Holder &holder = *it->second.holder;
    Parsed *patch;
    const Json *events_json;
    try {
      patch = &parse_once(i, 3);
      events_json = &parse_once(i, 4).json;
    } catch (const JsonError &e) {
      /* (a value nested deeper than this client parses: it alone keeps
       * the error, and the rest of the reply is applied) */
      set_error(it->first, e.what());
      continue;
    }
    const Json &events = *events_json;
    int64_t version = r.i64(i, 1);
    Parsed whole_patch;
    Move *move = nullptr;
    if (r.i64(i, 6) != holder.version()) {
      /* A reply went missing (a call that failed after the server moved the
       * value on): from our version the server sends the whole value.  If
       * that fails (other than by the connection), this value alone keeps
       * its error until a later reply: the rest of this one is applied. */
      try {
        auto whole = connection().exec("SELECT ectosync.changes($1, $2)::text",
                                       {std::string(it->first), std::to_string(holder.version())});
        round_trips_++;
        Json reply = parse_json(whole.str(0, 0));
        whole_patch.json = *reply.find("patch");
        version = std::stoll(reply.find("version")->text);
      } catch (const pg::ConnectionLost &) {
        throw;
      } catch (const pg::Error &e) {
        set_error(it->first, e.what());
        continue;
      } catch (const JsonError &e) {
        set_error(it->first, e.what());
        continue;
      }
      patch = &whole_patch;
    } else {
      move = &moves[{holder.document().get(), patch}];
    }
    uint64_t seq = static_cast<uint64_t>(r.i64(i, 2));
    int result;
    try {
      if (!patch->compiled) patch->compiled = std::make_unique<CompiledPatch>(patch->json);
    } catch (const PatchError &) {
      move = nullptr; /* (cannot happen with the server's patches; recover anyway) */
    }
    /* In place when every holder of the document moves it so now. */
    bool in_place =
        move && !move->failed && !move->made && move->holders == holder.document().use_count();
    const Json *before = holder.document().get();
    try {
      if (!patch->compiled) {
        holder.restart(true);
        result = 1;
      } else if (move && move->failed) {
        holder.restart(true); /* its document was partly patched */
        result = 1;
      } else if (move && move->made) {
        result = holder.apply_reply(patch->json, *patch->compiled, version, seq, &events, false,
                                    move->made);
      } else {
        result = holder.apply_reply(patch->json, *patch->compiled, version, seq, &events, in_place);
        forget_text(before); /* (patched in place, or partly by a failed patch) */
        if (move && result < 0) {
          /* It holds its value again: it no longer uses the document. */
          move->failed = in_place;
          move->holders--;
        }
        if (move && result >= 0) move->made = holder.document();
      }
    } catch (const pg::ConnectionLost &) {
      throw;
    } catch (const std::runtime_error &e) {
      /* Holding it again failed (its table dropped, its role no longer
       * allowed; pg::Error, or JsonError for a value nested deeper than
       * this client parses): it keeps the error and no version the server
       * has, so its next reply fetches it whole; the rest of this reply
       * goes on. */
      set_error(it->first, e.what());
      if (move && in_place) {
        forget_text(before);
        move->failed = true; /* (partly patched for the others too) */
      } else if (move && holder.document().get() != before) {
        /* It patched a copy: it no longer uses the document, which another
         * holder must not take for its own alone and patch in place. */
        move->holders--;
      }
      continue;
    }
    if (result != 0) {
      changed++;
      changed_holders.emplace_back(r.get(i, 0), it);
    }
  }
  call_back(changed_holders);
  return changed;
}

std::shared_ptr<Json> Hub::document(const std::string &text) {
  auto it = by_text_.find(text);
  if (it != by_text_.end()) {
    if (std::shared_ptr<Json> doc = it->second.doc.lock()) return doc;
    erase_held(it);
  }
  if (by_text_.size() > 2 * holders_.size() + 64) {
    for (auto e = by_text_.begin(); e != by_text_.end();) {
      auto next = std::next(e);
      if (e->second.doc.expired()) erase_held(e);
      e = next;
    }
  }
  auto doc = std::make_shared<Json>(parse_json(text));
  text_of_[doc.get()] = by_text_.emplace(text, Held{doc, doc.get()}).first;
  return doc;
}

/* doc is patched in place: it is no longer the value of its text. */
void Hub::forget_text(const Json *doc) {
  auto t = text_of_.find(doc);
  if (t != text_of_.end()) erase_held(t->second);
}

void Hub::erase_held(std::map<std::string, Held>::iterator e) {
  auto t = text_of_.find(e->second.address);
  if (t != text_of_.end() && t->second == e) text_of_.erase(t);
  by_text_.erase(e);
}

/* Reload and Requery: each holder reloads on the notifications of its channels. */
int Hub::pump_notified(std::chrono::milliseconds timeout) {
  auto first = connection().wait_notification(timeout);
  if (!first) return 0;
  std::vector<pg::Notification> batch{std::move(*first)};
  for (auto &n : connection().take_notifications()) batch.push_back(std::move(n));
  /* Every holder sees the batch, whatever another's reload does. */
  std::vector<std::string> names; /* (owned: a callback may remove a holder) */
  std::vector<Holders::iterator> found;
  for (auto it = holders_.begin(); it != holders_.end(); ++it) {
    int64_t before = it->second.holder->stats().reloads;
    try {
      it->second.holder->notified(batch);
      clear_error(it->first);
    } catch (const pg::ConnectionLost &) {
      throw;
    } catch (const pg::Error &e) {
      set_error(it->first, e.what());
    }
    if (it->second.holder->stats().reloads != before) {
      names.emplace_back(it->first);
      found.push_back(it);
    }
  }
  call_back(pairs(names, found));
  return static_cast<int>(batch.size());
}

/*
 * A new connection, and every value held (or loaded) again.  A value that
 * cannot be (its table dropped, its role no longer allowed) keeps the error
 * and the others go on; a lost connection starts over.  Until a reconnect
 * succeeds, pump() tries again: the session holds nothing meanwhile.  The
 * callbacks run: values may have changed while the hub was away.
 */
void Hub::reconnect() {
  lost_ = true;
  std::vector<std::string> names; /* (owned: a callback may remove a holder) */
  std::vector<Holders::iterator> found;
  for (int attempt = 0; lost_; attempt++) {
    try {
      conn_ = std::make_unique<pg::Connection>(conninfo_, "ectosync hub");
      names.clear();
      found.clear();
      unheld_.clear();
      for (auto it = holders_.begin(); it != holders_.end(); ++it) {
        if (!restart(it)) {
          unheld_.emplace(it->first);
          continue;
        }
        names.emplace_back(it->first);
        found.push_back(it);
      }
      lost_ = false;
      reconnects_++;
    } catch (const pg::Error &) {
      if (attempt >= 60) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50 * (attempt + 1), 500)));
    }
  }
  call_back(pairs(names, found));
}

}  // namespace ectosync

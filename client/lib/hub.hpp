/*
 * hub.hpp: many held values over one connection.
 *
 * An application process holds a value per screen of each of its users:
 * thousands of values, which cannot have a connection each.  A Hub keeps
 * them on one session (held values need one: a pooler in transaction mode
 * cannot keep them):
 *
 *   add(holder):  SELECT ectosync.hold(name, tbl, assocs, filter, listen => false)
 *   pump():       SELECT * FROM ectosync.wait_changes(timeout)
 *                 -- a row (name, version, seq, patch, reloaded, events) per
 *                 value that changed, as soon as one did: each patch is
 *                 applied to its holder's copy, whose callback then runs;
 *   the connection broke -> reconnect and hold every value again.
 *
 * Holders of one value share its document: a hold() whose value is a
 * document the hub has, unpatched since, gets that document, and a reply
 * that moves every holder of a document by the same patch patches it once
 * (a holder whose reply differs gets a copy).  The holders of all posts on
 * one connection keep one copy, not one each.
 *
 * Holders are Holder objects (holder.hpp) whose options name the hub; for
 * comparisons, Reload and Requery holders share a hub too: it LISTENs to
 * the union of their channels and each reloads on its own.
 * A Hub is used from one thread at a time.
 */
#pragma once

#include "holder.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ectosync {

class Hub {
 public:
  explicit Hub(std::string conninfo, HolderOptions::Mode mode = HolderOptions::Mode::Held);

  /* Connects (once); then holds (or subscribes and loads) holder's value.
   * on_change, if given, runs after each change of it (once every change
   * of the same reply is applied), and after a reconnect. */
  void add(Holder &holder, std::function<void(Holder &)> on_change = {});
  /* Forgets holder's value (releases it in the session). */
  void remove(Holder &holder);
  /* One wait for every value: the values changed (Held), or the
   * notifications handled (Reload, Requery); 0 at the timeout.
   * Reconnects and holds everything again when the connection broke. */
  int pump(std::chrono::milliseconds timeout);
  /* Reconnect, and hold (or load) every value again. */
  void reconnect();
  /* Held mode: the document of a value hold() returned as text: one the
   * hub has if it is that value still, else a new one. */
  std::shared_ptr<Json> document(const std::string &text);

  pg::Connection &connection();
  size_t size() const { return holders_.size(); }
  int64_t round_trips() const { return round_trips_; }
  int64_t reconnects() const { return reconnects_; }
  /* The error of a value's last change or hold again (its role may no
   * longer read a table of it), or "" since one succeeded. */
  std::string error(std::string_view name) const {
    auto it = errors_.find(name);
    return it == errors_.end() ? "" : it->second;
  }

 private:
  struct Entry {
    std::unique_ptr<const std::string> name; /* (the map's key views it) */
    Holder *holder;
    std::function<void(Holder &)> on_change;
  };
  /* By held name: a reply's rows are found by the names it carries, with
   * no copy of them. */
  using Holders = std::unordered_map<std::string_view, Entry>;

  int pump_held(std::chrono::milliseconds timeout);
  int hold_again();
  bool restart(Holders::iterator it);
  int pump_notified(std::chrono::milliseconds timeout);
  /* The holders changed, each as found when its change was applied (and
   * found again by name if a callback added or removed holders since). */
  void call_back(const std::vector<std::pair<std::string_view, Holders::iterator>> &changed);
  static std::vector<std::pair<std::string_view, Holders::iterator>> pairs(
      const std::vector<std::string> &names, const std::vector<Holders::iterator> &found);
  void set_error(std::string_view name, std::string error);
  void clear_error(std::string_view name);

  std::string conninfo_;
  HolderOptions::Mode mode_;
  std::unique_ptr<pg::Connection> conn_;
  Holders holders_;
  uint64_t membership_ = 0; /* holders added or removed: call_back()'s iterators */
  std::set<std::string, std::less<>> unheld_; /* not held by this session: hold_again() */
  std::map<std::string, std::string, std::less<>> errors_;
  /* document(): the documents not patched in place since they were held,
   * by their text (entries of expired documents are swept now and then). */
  struct Held {
    std::weak_ptr<Json> doc;
    const Json *address;
  };
  std::map<std::string, Held> by_text_;
  std::map<const Json *, std::map<std::string, Held>::iterator> text_of_;
  void forget_text(const Json *doc);
  void erase_held(std::map<std::string, Held>::iterator e);
  int64_t round_trips_ = 0, reconnects_ = 0;
  bool lost_ = false; /* a reconnect is due: the session holds nothing */
};

}  // namespace ectosync

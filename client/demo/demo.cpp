/*
 * ectosync_demo: the blog domain, N holders, M writers, three ways to keep
 * the holders' values current, and the figures side by side.
 *
 *   ectosync   ecto_sync: hold() once, then wait_changes() returns the JSON
 *              Patch of each change (the worker wakes the holder itself)
 *   reload     ecto_sync's notifications, but holders re-run load() on each
 *              (batch of) notification(s) of their tables          (alt. a)
 *   notify     no ecto_sync capture: a plpgsql row trigger calls pg_notify
 *              with the row as JSON (the EctoWatch way), holders re-query
 *                                                                  (alt. b)
 *
 * Each mode gets a fresh database seeded identically and the same writer
 * streams (same seeds, same pacing).  After the writers stop and the events
 * drain, every holder's value is compared with a fresh load: any difference
 * makes the exit status non-zero.
 *
 * Run it through scripts/demo.sh (a throwaway cluster); --help for flags.
 */
#include "blog.hpp"
#include "holder.hpp"
#include "hub.hpp"
#include "options.hpp"
#include "shapes.hpp"
#include "metrics.hpp"
#include "pg.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using demo::Options;
using demo::Shape;
using ectosync::Clock;
using ectosync::Holder;
using ectosync::HolderOptions;

namespace {

/* A holder's root rows, counted here: no round trip per holder. */
int64_t row_count(const Holder &h) {
  ectosync::Json v = ectosync::parse_json(h.value());
  const ectosync::Json *rows = v.find("rows");
  return rows ? static_cast<int64_t>(rows->items.size()) : 0;
}

/* Stops and joins threads when leaving a scope, also on an exception. */
struct StopAndJoin {
  std::atomic<bool> &stop;
  std::vector<std::thread> &threads;
  ~StopAndJoin() {
    stop = true;
    for (auto &t : threads)
      if (t.joinable()) t.join();
  }
};

struct ModeResult {
  std::string mode;
  blog::WriteStats writes;
  double write_seconds = 0, drain_seconds = 0;
  double cpu_seconds = -1;
  int64_t rows_read = 0;
  std::map<std::string, double> stats_delta, stats_after;
  int64_t notifications = 0, syncs = 0, reloads = 0, reloads_ze001 = 0, round_trips = 0,
          patches = 0;
  std::vector<double> latency_us;
  int holders = 0, diverged = 0;
  metrics::Table per_shape{{"shape", "holders", "rows held", "kB held", "notified", "round trips",
                            "patches", "p50 ms", "p99 ms"}};
};

std::map<std::string, double> try_stats(pg::Connection &conn) {
  try {
    return metrics::ectosync_stats(conn);
  } catch (const pg::Error &) {
    return {};
  }
}

ModeResult run_mode(const Options &o, const std::string &mode) {
  ModeResult res;
  res.mode = mode;
  const std::string db = "ectosync_demo_" + mode;
  /* (notify: the re-query is ectosync.load(), of values no watch captures,
   * read only: the alternative pays no capture) */
  const std::string conninfo =
      "dbname=" + db + (mode == "notify" ? " options='-c ectosync.load_unwatched=on'" : "");
  const std::string pgdata = std::getenv("ECTOSYNC_PGDATA") ? std::getenv("ECTOSYNC_PGDATA") : "";
  std::cout << "\n== mode " << mode << ": database " << db << std::endl;
  {
    pg::Connection admin;
    admin.exec("DROP DATABASE IF EXISTS " + admin.quote_ident(db) + " WITH (FORCE)");
    admin.exec("CREATE DATABASE " + admin.quote_ident(db));
  }
  /* dropped when the mode is done: its worker stops (workers count against
   * max_worker_processes); declared first, so destroyed last */
  struct DropAtEnd {
    std::string db;
    ~DropAtEnd() {
      try {
        pg::Connection admin;
        admin.exec("DROP DATABASE IF EXISTS " + admin.quote_ident(db) + " WITH (FORCE)");
      } catch (const std::exception &) {
      }
    }
  } drop_at_end{db};
  pg::Connection admin(conninfo, "ectosync demo admin");
  admin.exec("SET client_min_messages = warning; CREATE EXTENSION ecto_sync");
  blog::create_schema(admin);
  blog::Scale scale;
  scale.posts = o.posts;
  scale.persons = std::max(20, o.posts / 10);
  scale.audit_entries = o.posts / 3;
  auto t0 = Clock::now();
  blog::seed(admin, o.seed, scale);
  auto counts = admin.exec(
      "SELECT (SELECT count(*) FROM persons), (SELECT count(*) FROM posts), (SELECT count(*) "
      "FROM comments), (SELECT count(*) FROM tags), (SELECT count(*) FROM posts_tags), (SELECT "
      "count(*) FROM posts_labels), (SELECT count(*) FROM audit.entries)");
  std::cout << "seeded in "
            << metrics::fmt(std::chrono::duration<double>(Clock::now() - t0).count(), 2)
            << " s: " << counts.str(0, 0) << " persons, " << counts.str(0, 1) << " posts, "
            << counts.str(0, 2) << " comments, " << counts.str(0, 3) << " tags, "
            << counts.str(0, 4) << " post tags, " << counts.str(0, 5) << " post labels, "
            << counts.str(0, 6) << " audit entries" << std::endl;

  auto shapes = demo::make_shapes(admin, o, scale.persons);
  if (mode == "notify") {
    blog::install_notify_trigger(admin, blog::kTables);
  } else {
    std::map<std::string, bool> done;
    for (const auto &s : shapes) {
      if (done[s.table + s.assocs]) continue;
      done[s.table + s.assocs] = true;
      admin.exec("SELECT ectosync.watch($1::regclass, $2::jsonb)", {s.table, s.assocs});
    }
  }

  ectosync::CommitLog commits;
  const HolderOptions::Mode holder_mode = mode == "ectosync" ? HolderOptions::Mode::Held
                                          : mode == "reload" ? HolderOptions::Mode::Reload
                                                             : HolderOptions::Mode::Requery;
  /* With --connections, holders share hubs: the same logical holders over
   * the same connections in every mode. */
  std::vector<std::unique_ptr<ectosync::Hub>> hubs;
  for (int c = 0; c < o.connections; c++)
    hubs.push_back(std::make_unique<ectosync::Hub>(conninfo, holder_mode));
  std::vector<std::unique_ptr<Holder>> holders;
  for (size_t i = 0; i < shapes.size(); i++) {
    HolderOptions ho;
    ho.conninfo = conninfo;
    ho.hub = hubs.empty() ? nullptr : hubs[i % hubs.size()].get();
    ho.table = shapes[i].table;
    ho.assocs = shapes[i].assocs;
    ho.filter = shapes[i].filter;
    ho.mode = holder_mode;
    ho.commits = &commits;
    ho.name = "holder " + std::to_string(i) + " (" + shapes[i].label + ")";
    holders.push_back(std::make_unique<Holder>(ho));
  }
  /* start holders in parallel: each connects, subscribes, loads */
  {
    std::vector<std::thread> starters;
    std::atomic<size_t> next{0};
    std::string error;
    std::mutex mu;
    if (hubs.empty())
      for (int t = 0; t < 2; t++)
        starters.emplace_back([&] {
          for (size_t i; (i = next++) < holders.size();) {
            try {
              holders[i]->start();
            } catch (const std::exception &e) {
              std::lock_guard<std::mutex> lock(mu);
              error = holders[i]->options().name + ": " + e.what();
            }
          }
        });
    for (size_t c = 0; c < hubs.size(); c++)
      starters.emplace_back([&, c] {
        for (size_t i = c; i < holders.size(); i += hubs.size()) {
          try {
            hubs[c]->add(*holders[i]);
          } catch (const std::exception &e) {
            std::lock_guard<std::mutex> lock(mu);
            error = holders[i]->options().name + ": " + e.what();
            return;
          }
        }
      });
    for (auto &t : starters) t.join();
    if (!error.empty()) throw std::runtime_error(error);
  }
  int64_t held_rows = 0;
  for (auto &h : holders) held_rows += row_count(*h);
  std::cout << holders.size() << " holders started"
            << (hubs.empty() ? "" : " on " + std::to_string(hubs.size()) + " connections") << ", "
            << held_rows << " rows held in all" << std::endl;
  res.holders = static_cast<int>(holders.size());

  /* baselines */
  admin.exec("SELECT pg_sleep(1.2)"); /* let backends flush their table stats */
  auto stats0 = try_stats(admin);
  int64_t rows0 = metrics::table_rows_read(admin);
  auto cpu0 = metrics::server_cpu_seconds(pgdata);

  std::atomic<bool> stop_writers{false}, stop_holders{false}, failed{false};
  std::vector<std::atomic<int64_t>> last_activity_ms(holders.size());
  auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
        .count();
  };
  for (auto &a : last_activity_ms) a = now_ms();
  std::string failure;
  std::mutex failure_mu;
  auto fail = [&](const std::string &what) {
    std::lock_guard<std::mutex> lock(failure_mu);
    if (failure.empty()) failure = what;
    failed = true;
  };
  std::vector<std::thread> holder_threads;
  StopAndJoin join_holders{stop_holders, holder_threads};
  /* (with hubs: one thread per connection, its activity in last_activity_ms[c]) */
  for (size_t c = 0; c < hubs.size(); c++)
    holder_threads.emplace_back([&, c] {
      try {
        while (!stop_holders)
          if (hubs[c]->pump(mode == "ectosync" ? 2000ms : 50ms) > 0) last_activity_ms[c] = now_ms();
      } catch (const std::exception &e) {
        fail("connection " + std::to_string(c) + ": " + e.what());
      }
    });
  for (size_t i = 0; hubs.empty() && i < holders.size(); i++)
    holder_threads.emplace_back([&, i] {
      try {
        while (!stop_holders) {
          /* Held values wait in the server, and an idle one returns empty
           * at the timeout: 2 s (apps use the 10 s default) keeps 100 idle
           * holders from making 200 empty round trips a second. */
          if (holders[i]->pump(mode == "ectosync" ? 2000ms : 50ms) > 0)
            last_activity_ms[i] = now_ms();
        }
      } catch (const std::exception &e) {
        fail(holders[i]->options().name + ": " + e.what());
      }
    });

  blog::IdSpace ids;
  ids.read(admin);
  std::vector<blog::WriteStats> wstats(static_cast<size_t>(o.writers));
  std::vector<std::thread> writer_threads;
  StopAndJoin join_writers{stop_writers, writer_threads};
  const bool ecto = mode != "notify";
  auto wstart = Clock::now();
  for (int w = 0; w < o.writers; w++)
    writer_threads.emplace_back([&, w] {
      try {
        pg::Connection conn(conninfo, "ectosync demo writer");
        blog::Workload work(conn, ids, o.seed * 1000 + static_cast<uint64_t>(w), o.mix);
        auto interval = o.rate > 0 ? std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(o.writers / o.rate))
                                   : Clock::duration::zero();
        auto next = Clock::now();
        while (!stop_writers && !failed) {
          std::string txid;
          std::string seq =
              work.run_transaction(ecto ? "SELECT last_seq FROM ectosync.stats()" : "SELECT 0",
                                   "SELECT txid_current()", &txid);
          auto committed = Clock::now();
          if (ecto && !seq.empty()) commits.record_seq(std::stoull(seq), committed);
          if (!ecto && !txid.empty() && !seq.empty())
            commits.record_txid(std::stoull(txid), committed);
          if (interval.count() > 0) {
            next += interval;
            if (next < Clock::now() - 1s) next = Clock::now();
            std::this_thread::sleep_until(next);
          }
        }
        wstats[static_cast<size_t>(w)] = work.stats();
      } catch (const std::exception &e) {
        fail("writer " + std::to_string(w) + ": " + e.what());
      }
    });
  auto wend_target = wstart + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(o.duration_s));
  while (Clock::now() < wend_target && !failed) std::this_thread::sleep_for(50ms);
  stop_writers = true;
  for (auto &t : writer_threads) t.join();
  auto wend = Clock::now();
  res.write_seconds = std::chrono::duration<double>(wend - wstart).count();
  for (const auto &s : wstats) res.writes.add(s);
  std::cout << "writes done: " << res.writes.transactions << " transactions, " << res.writes.rows
            << " rows changed in " << metrics::fmt(res.write_seconds, 1) << " s" << std::endl;

  /* drain: the worker has notified everything, then holders go quiet */
  auto drain_deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(o.drain_timeout_s));
  if (ecto) {
    auto caught_up = admin.exec("SELECT ectosync.wait_for_worker($1::int)",
                                {std::to_string(static_cast<int>(o.drain_timeout_s * 1000))});
    if (!caught_up.boolean(0, 0))
      fail("the ecto_sync worker of " + db + " did not catch up within " +
           metrics::fmt(o.drain_timeout_s, 0) +
           " s (is max_worker_processes large enough for every database that uses ecto_sync?)");
  }
  for (;;) {
    int64_t quiet_since = now_ms() - 600;
    bool all_quiet = true;
    for (auto &a : last_activity_ms)
      if (a > quiet_since) all_quiet = false;
    if (all_quiet || failed || Clock::now() > drain_deadline) break;
    std::this_thread::sleep_for(100ms);
  }
  res.drain_seconds = std::chrono::duration<double>(Clock::now() - wend).count();
  auto cpu1 = metrics::server_cpu_seconds(pgdata);
  stop_holders = true;
  for (auto &t : holder_threads) t.join();
  if (failed) throw std::runtime_error(failure);

  admin.exec("SELECT pg_sleep(1.2)");
  res.rows_read = metrics::table_rows_read(admin) - rows0;
  res.stats_after = try_stats(admin);
  for (const auto &[k, v] : res.stats_after)
    res.stats_delta[k] = v - (stats0.count(k) ? stats0[k] : 0);
  if (cpu0 && cpu1) res.cpu_seconds = *cpu1 - *cpu0;

  struct ShapeSum {
    int holders = 0;
    int64_t rows = 0, bytes = 0, notifications = 0, round_trips = 0, patches = 0;
    std::vector<double> latency_us;
  };
  std::map<std::string, ShapeSum> by_shape;
  for (size_t i = 0; i < holders.size(); i++) {
    auto &sum = by_shape[shapes[i].label];
    const auto &st = holders[i]->stats();
    sum.holders++;
    sum.rows += row_count(*holders[i]);
    sum.bytes += static_cast<int64_t>(holders[i]->value().size());
    sum.notifications += st.notifications;
    sum.round_trips += st.round_trips;
    sum.patches += st.patches;
    sum.latency_us.insert(sum.latency_us.end(), st.latency_us.begin(), st.latency_us.end());
  }
  for (const auto &[label, sum] : by_shape)
    res.per_shape.add({label, std::to_string(sum.holders), std::to_string(sum.rows / sum.holders),
                       metrics::fmt(static_cast<double>(sum.bytes) / sum.holders / 1024, 0),
                       std::to_string(sum.notifications), std::to_string(sum.round_trips),
                       std::to_string(sum.patches),
                       metrics::fmt(metrics::percentile(sum.latency_us, 50) / 1000, 2),
                       metrics::fmt(metrics::percentile(sum.latency_us, 99) / 1000, 2)});

  for (auto &hub : hubs) res.round_trips += hub->round_trips();
  for (auto &h : holders) {
    const auto &st = h->stats();
    res.notifications += st.notifications;
    res.syncs += st.syncs;
    res.reloads += st.reloads;
    res.reloads_ze001 += st.reloads_ze001;
    res.round_trips += st.round_trips;
    res.patches += st.patches;
    res.latency_us.insert(res.latency_us.end(), st.latency_us.begin(), st.latency_us.end());
  }
  /* the check: every held value equals a fresh load, once each connection
   * has nothing more to apply */
  for (auto &hub : hubs) {
    auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(o.drain_timeout_s));
    while (hub->pump(500ms) > 0 && Clock::now() < deadline) {
    }
  }
  for (auto &h : holders) {
    bool same = h->matches_fresh_load();
    if (!same) same = h->converge(10s); /* a straggler, or a real divergence */
    if (!same) {
      res.diverged++;
      std::cout << "DIVERGED: " << h->options().name << ": " << h->describe() << std::endl;
    }
  }
  std::cout << "checked " << holders.size() << " holders against fresh loads: " << res.diverged
            << " diverged" << std::endl;
  return res;
}

double stat(const ModeResult &r, const char *name) {
  if (r.mode == "notify") return -1; /* no ecto_sync capture in that mode */
  auto it = r.stats_delta.find(name);
  return it == r.stats_delta.end() ? -1 : it->second;
}

std::string num(double v, int decimals = 0) {
  return v < 0 ? "-" : metrics::fmt(v, decimals);
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  try {
    o = demo::parse(argc, argv);
  } catch (const std::exception &e) {
    std::cerr << "ectosync_demo: " << e.what() << std::endl;
    demo::usage();
    return 2;
  }
  std::cout << "ectosync demo: " << o.holders << " holders, " << o.writers << " writers, "
            << o.duration_s << " s per mode at " << (o.rate > 0 ? metrics::fmt(o.rate, 0) : "max")
            << " transactions/s, mix " << o.mix.describe() << ", seed " << o.seed << ", " << o.posts
            << " posts" << std::endl;
  std::vector<ModeResult> results;
  try {
    for (const auto &m : o.modes) results.push_back(run_mode(o, m));
  } catch (const std::exception &e) {
    std::cerr << "ectosync_demo: " << e.what() << std::endl;
    return 1;
  }

  metrics::Table t({"", "ectosync", "reload (a)", "notify (b)"});
  auto find = [&](const char *m) -> const ModeResult * {
    for (const auto &r : results)
      if (r.mode == m) return &r;
    return nullptr;
  };
  const ModeResult *cols[3] = {find("ectosync"), find("reload"), find("notify")};
  auto row = [&](const std::string &label, auto f) {
    std::vector<std::string> cells{label};
    for (auto *r : cols) cells.push_back(r ? f(*r) : "");
    t.add(cells);
  };
  auto per_change = [](const ModeResult &r, double v) {
    return r.writes.rows > 0 && v >= 0 ? v / static_cast<double>(r.writes.rows) : -1.0;
  };
  row("transactions committed", [](const ModeResult &r) { return num(r.writes.transactions); });
  row("changes committed (rows)", [](const ModeResult &r) { return num(r.writes.rows); });
  row("writer TPS", [](const ModeResult &r) {
    return num(static_cast<double>(r.writes.transactions) / r.write_seconds, 1);
  });
  row("events captured", [](const ModeResult &r) { return num(stat(r, "events_captured")); });
  row("rows loaded by the worker", [](const ModeResult &r) { return num(stat(r, "rows_loaded")); });
  row("rows loaded per change",
      [&](const ModeResult &r) { return num(per_change(r, stat(r, "rows_loaded")), 2); });
  row("notifications sent", [](const ModeResult &r) { return num(stat(r, "notifications_sent")); });
  row("notifications received", [](const ModeResult &r) { return num(r.notifications); });
  row("syncs", [](const ModeResult &r) { return num(r.syncs); });
  row("reloads (ZE001)",
      [](const ModeResult &r) { return num(r.reloads) + " (" + num(r.reloads_ze001) + ")"; });
  row("holder round trips", [](const ModeResult &r) { return num(r.round_trips); });
  row("... that changed a held value",
      [](const ModeResult &r) { return r.mode == "ectosync" ? num(r.patches) : std::string("-"); });
  row("commit-to-synced p50 ms",
      [](const ModeResult &r) { return num(metrics::percentile(r.latency_us, 50) / 1000, 2); });
  row("commit-to-synced p99 ms",
      [](const ModeResult &r) { return num(metrics::percentile(r.latency_us, 99) / 1000, 2); });
  row("commit-to-synced max ms",
      [](const ModeResult &r) { return num(metrics::percentile(r.latency_us, 100) / 1000, 2); });
  row("latency samples",
      [](const ModeResult &r) { return num(static_cast<double>(r.latency_us.size())); });
  row("drain after writes s", [](const ModeResult &r) { return num(r.drain_seconds, 2); });
  row("server CPU ms per change", [&](const ModeResult &r) {
    return num(per_change(r, r.cpu_seconds < 0 ? -1 : r.cpu_seconds * 1000), 3);
  });
  row("table rows read per change",
      [&](const ModeResult &r) { return num(per_change(r, static_cast<double>(r.rows_read)), 1); });
  /* the cache is shared by all databases: what this mode added to it */
  row("cache entries added", [](const ModeResult &r) { return num(stat(r, "cache_entries")); });
  row("cache kB added", [](const ModeResult &r) {
    double b = stat(r, "cache_bytes");
    return num(b < 0 ? -1 : b / 1024, 1);
  });
  row("holders diverged",
      [](const ModeResult &r) { return num(r.diverged) + " of " + num(r.holders); });
  for (const auto &r : results)
    std::cout << "\nper shape, mode " << r.mode << " (per holder: rows and kB held)\n"
              << r.per_shape.render();
  std::cout << "\n" << t.render();

  if (cols[0] && (cols[1] || cols[2])) {
    metrics::Table ratios({"ratio to ectosync", "reload (a)", "notify (b)"});
    auto ratio_row = [&](const std::string &label, auto f) {
      std::vector<std::string> cells{label};
      for (int i = 1; i < 3; i++)
        cells.push_back(cols[i] ? metrics::ratio(f(*cols[i]), f(*cols[0])) : "");
      ratios.add(cells);
    };
    ratio_row("server CPU per change", [&](const ModeResult &r) {
      return per_change(r, r.cpu_seconds < 0 ? 0 : r.cpu_seconds);
    });
    ratio_row("table rows read per change",
              [&](const ModeResult &r) { return per_change(r, static_cast<double>(r.rows_read)); });
    ratio_row("commit-to-synced p50",
              [](const ModeResult &r) { return metrics::percentile(r.latency_us, 50); });
    ratio_row("commit-to-synced p99",
              [](const ModeResult &r) { return metrics::percentile(r.latency_us, 99); });
    ratio_row("writer TPS", [](const ModeResult &r) {
      return static_cast<double>(r.writes.transactions) / r.write_seconds;
    });
    std::cout << "\n" << ratios.render();
  }
  int diverged = 0;
  for (const auto &r : results) diverged += r.diverged;
  if (diverged) {
    std::cout << "\nFAILED: " << diverged << " held value(s) differ from a fresh load" << std::endl;
    return 1;
  }
  std::cout << "\nOK: every held value equals a fresh load" << std::endl;
  return 0;
}

/*
 * ectosync_bench latency: commit-to-notify latency at paced change rates,
 * ecto_sync against a plpgsql pg_notify trigger (see main.cpp).
 */
#include "benches.hpp"
#include "blog.hpp"
#include "holder.hpp"
#include "metrics.hpp"
#include "pg.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <thread>

using namespace std::chrono_literals;
using ectosync::Clock;

namespace bench {

int bench_latency(const Flags &f) {
  int seconds = f.count("seconds") ? std::stoi(f.at("seconds")) : 4;
  auto rates = int_list(f.count("rates") ? f.at("rates") : "100,1000,10000");
  /* ecto_sync (the worker notifies after loading the rows) against a plpgsql
   * trigger whose pg_notify leaves with the writer's own commit */
  struct Config {
    std::string label, db;
    bool ecto;
  };
  const std::vector<Config> configs = {
      {"ecto_sync", "ectosync_bench_latency", true},
      {"plpgsql pg_notify", "ectosync_bench_latency_notify", false}};
  metrics::Table t(
      {"config", "target changes/s", "achieved/s", "events", "p50 ms", "p99 ms", "max ms"});
  std::map<std::pair<std::string, int>, std::vector<double>> results;
  for (const auto &config : configs) {
    std::string conninfo = fresh_db(config.db);
    std::string relid;
    {
      pg::Connection conn(conninfo);
      blog::create_schema(conn);
      blog::Scale s;
      s.posts = 2000;
      blog::seed(conn, 3, s);
      if (config.ecto) {
        conn.exec("SELECT ectosync.watch('posts')");
      } else {
        blog::install_notify_trigger(conn, {"posts"});
      }
      relid = conn.exec("SELECT 'posts'::regclass::oid::text").str(0, 0);
    }
    for (int rate : rates) {
      ectosync::CommitLog commits;
      pg::Connection listener(conninfo);
      if (config.ecto)
        listener.exec("SELECT ectosync.subscribe('posts')");
      else
        listener.exec("LISTEN ectowatch_" + relid);
      std::atomic<bool> stop{false}, failed{false};
      std::atomic<int64_t> changes{0};
      const int writers = 2;
      /* rows per transaction so that each writer commits at most ~1000 times/s */
      const int per_txn = std::max(1, rate / (writers * 1000));
      std::vector<std::thread> threads;
      for (int w = 0; w < writers; w++)
        threads.emplace_back([&, w] {
          try {
            pg::Connection conn(conninfo);
            double txn_per_s = static_cast<double>(rate) / writers / per_txn;
            auto interval = std::chrono::duration_cast<Clock::duration>(
                std::chrono::duration<double>(1 / txn_per_s));
            auto next = Clock::now();
            int64_t i = 0;
            while (!stop) {
              std::string sql = "BEGIN;";
              for (int k = 0; k < per_txn; k++, i++)
                sql += "UPDATE posts SET title = 'lat " + std::to_string(i) +
                       "' WHERE id = " + std::to_string(1 + (w * 1000 + i) % 2000) + ";";
              if (config.ecto) {
                auto r = conn.exec(sql + "COMMIT; SELECT last_seq FROM ectosync.stats()");
                commits.record_seq(static_cast<uint64_t>(r.i64(0, 0)), Clock::now());
              } else {
                auto r = conn.exec(sql + "SELECT txid_current()");
                uint64_t txid = static_cast<uint64_t>(r.i64(0, 0));
                conn.exec("COMMIT");
                commits.record_txid(txid, Clock::now());
              }
              changes += per_txn;
              next += interval;
              if (next < Clock::now() - 1s) next = Clock::now();
              std::this_thread::sleep_until(next);
            }
          } catch (const std::exception &e) {
            std::cerr << "latency writer: " << e.what() << std::endl;
            failed = true;
          }
        });
      /* (key, received): resolved once every commit time is known, since a
       * notification may arrive before its writer returned from COMMIT */
      std::vector<std::pair<uint64_t, Clock::time_point>> seen;
      auto start = Clock::now();
      auto end = start + std::chrono::seconds(seconds);
      auto record = [&](const pg::Notification &n) {
        if (config.ecto) {
          auto ev = pg::json_string_member(n.payload, "event");
          if (ev)
            seen.emplace_back(std::strtoull(ev->c_str() + ev->find(':') + 1, nullptr, 10),
                              n.received);
        } else {
          auto txid = pg::json_string_member(n.payload, "txid");
          if (txid) seen.emplace_back(std::strtoull(txid->c_str(), nullptr, 10), n.received);
        }
      };
      while (Clock::now() < end && !failed) {
        if (auto n = listener.wait_notification(100ms)) record(*n);
        for (auto &n : listener.take_notifications()) record(n);
      }
      stop = true;
      for (auto &th : threads) th.join();
      if (failed) throw std::runtime_error("a latency writer failed");
      double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      /* the events still in flight */
      while (auto n = listener.wait_notification(500ms)) record(*n);
      std::vector<double> lat;
      for (const auto &[key, received] : seen) {
        auto c = config.ecto ? commits.seq_time(key) : commits.txid_time(key);
        /* the notification may come before COMMIT returned to the writer: 0 */
        if (c)
          lat.push_back(
              std::max(0.0, std::chrono::duration<double, std::micro>(received - *c).count()));
      }
      t.add({config.label, std::to_string(rate),
             metrics::fmt(static_cast<double>(changes) / elapsed, 0), std::to_string(lat.size()),
             metrics::fmt(metrics::percentile(lat, 50) / 1000, 2),
             metrics::fmt(metrics::percentile(lat, 99) / 1000, 2),
             metrics::fmt(metrics::percentile(lat, 100) / 1000, 2)});
      results[{config.label, rate}] = lat;
    }
  }
  std::string delay = pg::Connection().exec("SHOW ectosync.batch_delay").str(0, 0);
  std::cout << "\ncommit-to-notify latency (2 writers, updates of posts; ectosync.batch_delay = "
            << delay
            << "; commit time: ecto_sync, the earliest commit known to cover the event; "
               "pg_notify, the writer's own)\n"
            << t.render();
  metrics::Table r({"changes/s", "p50 ecto_sync/pg_notify", "p99 ecto_sync/pg_notify"});
  for (int rate : rates) {
    const auto &a = results[{"ecto_sync", rate}];
    const auto &b = results[{"plpgsql pg_notify", rate}];
    r.add({std::to_string(rate),
           metrics::ratio(metrics::percentile(a, 50), metrics::percentile(b, 50)),
           metrics::ratio(metrics::percentile(a, 99), metrics::percentile(b, 99))});
  }
  std::cout << "\n" << r.render();
  return 0;
}

}  // namespace bench

/*
 * ectosync_bench interests: the worker's cost per event as held values
 * grow (see main.cpp).  Each user's own posts are a held value (a filter
 * on the foreign key), held on 4 connections; then one writer updates
 * random users' posts, one row per transaction.  The worker's CPU time
 * per event is read from /proc, against the same run with no held value:
 * with the interest index it stays flat, where matching every interest
 * against every event grew with the values.
 */
#include "benches.hpp"
#include "metrics.hpp"
#include "pg.hpp"

#include <algorithm>
#include <iostream>
#include <memory>
#include <random>
#include <thread>

namespace bench {

namespace {

/* Holds users [from, to) over the connections, each a thread. */
void hold_users(std::vector<std::unique_ptr<pg::Connection>> &conns, int from, int to) {
  std::vector<std::thread> threads;
  std::string error;
  for (size_t c = 0; c < conns.size(); c++)
    threads.emplace_back([&, c] {
      try {
        for (int u = from + static_cast<int>(c); u < to; u += static_cast<int>(conns.size()))
          conns[c]->exec_prepared(
              "SELECT ectosync.hold('user ' || $1, 'ibench.posts', '[]', "
              "pg_catalog.jsonb_build_object('author_id', $1::int), listen => false) IS NULL",
              {std::to_string(u)});
      } catch (const std::exception &e) {
        error = e.what();
      }
    });
  for (auto &t : threads) t.join();
  if (!error.empty()) throw std::runtime_error("holding values: " + error);
}

}  // namespace

int bench_interests(const Flags &f) {
  auto counts = int_list(f.count("values") ? f.at("values") : "0,1000,10000,30000");
  int events = f.count("events") ? std::stoi(f.at("events")) : 20000;
  std::sort(counts.begin(), counts.end());
  int users = std::max(1, counts.back());
  std::string conninfo = fresh_db("ectosync_bench_interests");
  pg::Connection admin(conninfo);
  admin.exec(
      "CREATE SCHEMA ibench;"
      "CREATE TABLE ibench.users (id int PRIMARY KEY);"
      "CREATE TABLE ibench.posts (id int PRIMARY KEY, author_id int NOT NULL REFERENCES "
      "ibench.users, title text NOT NULL);"
      "CREATE INDEX ON ibench.posts (author_id);");
  admin.exec("INSERT INTO ibench.users SELECT generate_series(1, $1::int)",
             {std::to_string(users)});
  admin.exec(
      "INSERT INTO ibench.posts SELECT i, 1 + (i - 1) / 2, 'post ' || i "
      "FROM generate_series(1, 2 * $1::int) i",
      {std::to_string(users)});
  admin.exec("SELECT ectosync.watch('ibench.posts')");
  /* A session uses the table from the start: the worker reads every
   * changed row ahead at every step, with or without held values. */
  admin.exec("SELECT ectosync.load('ibench.posts', '[]', '{\"author_id\": 1}') IS NULL");
  int worker = 0;
  for (int tries = 0; worker == 0 && tries < 100; tries++) {
    auto r = admin.exec(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'ecto_sync worker' AND datname = "
        "current_database()");
    if (r.rows() > 0) worker = static_cast<int>(r.i64(0, 0));
    if (worker == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (worker == 0) throw std::runtime_error("no ecto_sync worker for the database");
  std::vector<std::unique_ptr<pg::Connection>> holders;
  for (int c = 0; c < 4; c++) holders.push_back(std::make_unique<pg::Connection>(conninfo));
  pg::Connection writer(conninfo);
  std::mt19937 rng(7);
  metrics::Table t({"held values", "events", "worker CPU ms", "us per event", "ratio to none"});
  double none = 0;
  int held = 0;
  std::cout << "interests: per row, " << events
            << " single-row updates of random users' posts; each user's posts a held value"
            << std::endl;
  for (int n : counts) {
    hold_users(holders, 1 + held, 1 + n);
    held = std::max(held, n);
    /* One batch first: the worker indexes the new values then, not in
     * the measured updates. */
    writer.exec("UPDATE ibench.posts SET title = title || '.' WHERE id = 1");
    admin.exec("SELECT ectosync.wait_for_worker()");
    auto cpu0 = metrics::process_cpu_seconds(worker);
    for (int i = 0; i < events; i++) {
      int post = 1 + static_cast<int>(rng() % static_cast<unsigned>(2 * users));
      writer.exec_prepared("UPDATE ibench.posts SET title = 'edit ' || $1 WHERE id = $2::int",
                           {std::to_string(i), std::to_string(post)});
    }
    admin.exec("SELECT ectosync.wait_for_worker()");
    auto cpu1 = metrics::process_cpu_seconds(worker);
    if (!cpu0 || !cpu1) throw std::runtime_error("cannot read the worker's CPU time");
    double ms = (*cpu1 - *cpu0) * 1000, per = ms * 1000 / events;
    if (n == counts.front()) none = per;
    t.add({std::to_string(n), std::to_string(events), metrics::fmt(ms, 0), metrics::fmt(per, 1),
           metrics::ratio(per, none)});
  }
  std::cout << t.render();
  return 0;
}

}  // namespace bench

/*
 * ectosync_bench sync: the server-side cost of sync(value, event) against
 * load() and the floor SELECT $1::jsonb; held values end to end; concurrent
 * clients (see main.cpp).
 */
#include "benches.hpp"
#include "blog.hpp"
#include "holder.hpp"
#include "metrics.hpp"
#include "pg.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

using namespace std::chrono_literals;
using ectosync::Clock;

namespace bench {

namespace {

struct Timing {
  double mean_us = 0, min_us = 0;
  int n = 0;
};

template <class F>
Timing time_it(F &&f, double min_seconds) {
  Timing t;
  double total = 0;
  t.min_us = 1e18;
  auto start = Clock::now();
  while (t.n < 5 || std::chrono::duration<double>(Clock::now() - start).count() < min_seconds) {
    auto a = Clock::now();
    f();
    double us = std::chrono::duration<double, std::micro>(Clock::now() - a).count();
    total += us;
    t.min_us = std::min(t.min_us, us);
    t.n++;
    if (t.n >= 100000) break;
  }
  t.mean_us = total / t.n;
  return t;
}

/* Calls load() or sync() in a loop inside the server for min_seconds and
 * returns the mean microseconds per call. */
const char *kDatumTimer = R"SQL(
CREATE FUNCTION bench_datum(v jsonb, e text, kind text, f jsonb, min_seconds float8)
RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
  n int := 0;
  r jsonb;
BEGIN
  LOOP
    IF kind = 'load' THEN
      r := ectosync.load('posts', '["tags"]', f);
    ELSE
      r := ectosync.sync(v, e);
    END IF;
    n := n + 1;
    EXIT WHEN extract(epoch FROM clock_timestamp() - t0) >= min_seconds;
  END LOOP;
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
END $$;
)SQL";

/*
 * Throughput of concurrent clients (pgbench, 1/8/32 connections) on the
 * 100-post value: sync() of one of the events against load(), each either
 * kept in the server (the value read from a table, only a boolean
 * returned) or returned to the client as text.
 */
template <typename Kinds>
int sync_throughput(pg::Connection &conn, const std::string &value, const std::string &filter,
                    const Kinds &kinds, const Flags &f) {
  int seconds = f.count("seconds") ? std::stoi(f.at("seconds")) : 3;
  auto clients = int_list(f.count("clients") ? f.at("clients") : "1,8,32");
  conn.exec("CREATE TABLE bench_held (id int PRIMARY KEY, value jsonb NOT NULL)");
  conn.exec("CREATE TABLE bench_events (id int PRIMARY KEY, payload text NOT NULL)");
  conn.exec("INSERT INTO bench_held VALUES (1, $1::jsonb)", {value});
  int n = 0;
  for (const auto &k : kinds)
    conn.exec("INSERT INTO bench_events VALUES ($1::int, $2)", {std::to_string(++n), k.payload});
  const std::string pick = "\\set e random(1, " + std::to_string(n) + ")\n";
  const std::string from = " FROM bench_held h, bench_events e WHERE h.id = 1 AND e.id = :e;\n";
  const std::string load = "ectosync.load('posts', '[\"tags\"]', '" + filter + "')";
  const std::vector<std::pair<std::string, std::string>> scripts = {
      {"sync, kept in the server",
       pick + "SELECT ectosync.sync(h.value, e.payload) IS NOT NULL" + from},
      {"load, kept in the server", "SELECT " + load + " IS NOT NULL;\n"},
      {"sync, value returned", pick + "SELECT ectosync.sync(h.value, e.payload)" + from},
      {"load, value returned", "SELECT " + load + ";\n"}};
  metrics::Table t({"100 posts (25 kB)", "clients", "calls/s", "sync vs load"}, 2);
  std::map<std::pair<std::string, int>, double> tps;
  for (const auto &[label, script] : scripts) {
    char path[] = "/tmp/ectosync-bench-XXXXXX.sql";
    int fd = mkstemps(path, 4);
    if (fd < 0) throw std::runtime_error("mkstemps");
    ::close(fd);
    std::ofstream(path) << script;
    for (int c : clients)
      tps[{label, c}] = run_pgbench("ectosync_bench_sync", path, c, seconds).tps;
    std::remove(path);
  }
  for (const auto &[label, script] : scripts)
    for (int c : clients) {
      bool is_sync = label.rfind("sync", 0) == 0;
      std::string versus =
          is_sync ? metrics::ratio(tps[{label, c}], tps[{"load" + label.substr(4), c}]) : "";
      t.add({label, std::to_string(c), metrics::fmt(tps[{label, c}], 0), versus});
    }
  std::cout << "\nconcurrent clients (pgbench, " << seconds << " s each)\n" << t.render();
  return 0;
}

/*
 * Held values end to end: a client holds the value (hold) and, after each
 * change, asks for it (changes): the round trip, and the bytes of the
 * reply, against sync() with the value sent and returned and against
 * load(), all timed at the client in the same run.  Each change is new (a
 * held value applies an event once): a post's title, or, every tenth, a
 * tag's name (which ~750 of the 10,000 posts carry).
 */
template <typename Values>
void held_round_trips(pg::Connection &writer, const std::string &conninfo, const Values &values,
                      double min_time) {
  metrics::Table t({"value", "per change", "changes() us", "reply bytes", "sync() us", "load() us",
                    "load / changes"},
                   2);
  const std::string assocs = R"(["tags"])";
  int change = 0;
  for (const auto &v : values) {
    pg::Connection holder(conninfo);
    pg::Param filter = v.filter.empty() ? pg::Param() : pg::Param(v.filter);
    holder.exec("SELECT ectosync.hold('v', 'posts', $1::jsonb, $2::jsonb, listen => false)",
                {assocs, filter});
    for (bool tag : {false, true}) {
      double changes_us = 0, reply_bytes = 0, sync_us = 0;
      int n = 0;
      std::string value = v.value;
      pg::Connection listener(conninfo);
      listener.exec("SELECT ectosync.subscribe('posts', $1::jsonb)", {assocs});
      auto start = Clock::now();
      while (n < 5 || std::chrono::duration<double>(Clock::now() - start).count() < min_time) {
        ++change;
        writer.exec(tag ? "UPDATE tags SET name = 'tag " + std::to_string(change) + "' WHERE id = 2"
                        : "UPDATE posts SET title = 'title " + std::to_string(change) +
                              "' WHERE id = 1");
        writer.exec("SELECT ectosync.wait_for_worker()");
        auto a = Clock::now();
        auto r = holder.exec("SELECT ectosync.changes('v')::text");
        changes_us += std::chrono::duration<double, std::micro>(Clock::now() - a).count();
        reply_bytes += static_cast<double>(r.str(0, 0).size());
        for (auto &note : listener.take_notifications()) {
          auto b = Clock::now();
          value = holder.exec("SELECT ectosync.sync($1::jsonb, $2)::text", {value, note.payload})
                      .str(0, 0);
          sync_us += std::chrono::duration<double, std::micro>(Clock::now() - b).count();
        }
        if (++n >= 10000) break;
      }
      auto load = time_it(
          [&] {
            holder.exec("SELECT ectosync.load('posts', $1::jsonb, $2::jsonb)::text",
                        {assocs, filter});
          },
          min_time / 4);
      double kb = static_cast<double>(v.value.size()) / 1024;
      t.add({tag ? "" : v.label + " (" + metrics::fmt(kb, 0) + " kB)",
             tag ? "tag rename" : "post update", metrics::fmt(changes_us / n, 0),
             metrics::fmt(reply_bytes / n, 0), metrics::fmt(sync_us / n, 0),
             metrics::fmt(load.mean_us, 0), metrics::ratio(load.mean_us, changes_us / n)});
    }
  }
  std::cout << "\nheld values, end to end at the client: changes() after each change, against "
               "sync() with the value sent and returned, and load()\n"
            << t.render();
}

}  // namespace

int bench_sync(const Flags &f) {
  double min_time = f.count("min-time") ? std::stod(f.at("min-time")) : 1.0;
  std::string conninfo = fresh_db("ectosync_bench_sync");
  pg::Connection conn(conninfo);
  blog::create_schema(conn);
  /* 10,000 posts, exactly 3 tags each; author 1 has exactly 100 of them */
  conn.exec(R"SQL(
INSERT INTO persons (name, email) SELECT 'person ' || g, 'p' || g || '@example.org'
  FROM generate_series(1, 100) g;
INSERT INTO tags (name) SELECT 'tag-' || g FROM generate_series(1, 40) g;
INSERT INTO posts (author_id, title, body, published)
  SELECT CASE WHEN g <= 100 THEN 1 ELSE 2 + g % 99 END, 'Post ' || g, md5(g::text), g % 3 = 0
  FROM generate_series(1, 10000) g;
INSERT INTO posts_tags (post_id, tag_id)
  SELECT id, 1 + (id + o) % 40 FROM posts, unnest(ARRAY[0, 13, 27]) o;
)SQL");
  conn.exec("VACUUM ANALYZE");
  const std::string assocs = R"(["tags"])";
  conn.exec("SELECT ectosync.watch('posts', $1::jsonb)", {assocs});
  struct Value {
    std::string label, filter, value;
  };
  std::vector<Value> values = {{"100 posts", R"({"author_id": 1})", ""}, {"10,000 posts", "", ""}};
  pg::Connection listener(conninfo);
  listener.exec("SELECT ectosync.subscribe('posts', $1::jsonb)", {assocs});
  for (auto &v : values) {
    auto r = conn.exec("SELECT ectosync.load('posts', $1::jsonb, $2::jsonb)::text",
                       {assocs, v.filter.empty() ? pg::Param() : pg::Param(v.filter)});
    v.value = r.str(0, 0);
  }
  /* one event of each kind, after the values' seq */
  struct Kind {
    std::string label, sql, payload;
  };
  std::vector<Kind> kinds = {
      {"tag update", "UPDATE tags SET name = 'renamed' WHERE id = 2", ""},
      {"join insert", "INSERT INTO posts_tags VALUES (1, 40)", ""},
      {"join delete", "DELETE FROM posts_tags WHERE post_id = 1 AND tag_id = 2", ""},
      {"post update", "UPDATE posts SET title = 'changed' WHERE id = 1", ""},
      {"unrelated (post outside 100)", "UPDATE posts SET title = 'elsewhere' WHERE id = 5000", ""},
  };
  for (auto &k : kinds) {
    conn.exec(k.sql);
    auto n = listener.wait_notification(10s);
    if (!n) throw std::runtime_error("no notification for " + k.label);
    k.payload = n->payload;
  }
  metrics::Table t({"value", "query", "mean us", "min us", "vs load", "vs floor"}, 2);
  for (const auto &v : values) {
    pg::Param filter = v.filter.empty() ? pg::Param() : pg::Param(v.filter);
    auto load = time_it(
        [&] {
          conn.exec("SELECT ectosync.load('posts', $1::jsonb, $2::jsonb)", {assocs, filter});
        },
        min_time);
    /* the floor, measured before and after the syncs (the lower mean is used) */
    auto floor_before = time_it([&] { conn.exec("SELECT $1::jsonb", {v.value}); }, min_time);
    std::vector<std::pair<std::string, Timing>> syncs;
    for (const auto &k : kinds)
      syncs.emplace_back(
          k.label, time_it(
                       [&] {
                         conn.exec("SELECT ectosync.sync($1::jsonb, $2)", {v.value, k.payload});
                       },
                       min_time));
    auto floor_after = time_it([&] { conn.exec("SELECT $1::jsonb", {v.value}); }, min_time);
    const Timing &floor = floor_before.mean_us <= floor_after.mean_us ? floor_before : floor_after;
    std::string kb = metrics::fmt(static_cast<double>(v.value.size()) / 1024, 0) + " kB";
    t.add({v.label + " (" + kb + ")", "load()", metrics::fmt(load.mean_us, 0),
           metrics::fmt(load.min_us, 0), "1.00x", metrics::ratio(load.mean_us, floor.mean_us)});
    t.add({"", "SELECT $1::jsonb (floor), before", metrics::fmt(floor_before.mean_us, 0),
           metrics::fmt(floor_before.min_us, 0), metrics::ratio(floor_before.mean_us, load.mean_us),
           metrics::ratio(floor_before.mean_us, floor.mean_us)});
    t.add({"", "SELECT $1::jsonb (floor), after", metrics::fmt(floor_after.mean_us, 0),
           metrics::fmt(floor_after.min_us, 0), metrics::ratio(floor_after.mean_us, load.mean_us),
           metrics::ratio(floor_after.mean_us, floor.mean_us)});
    for (const auto &[label, s] : syncs)
      t.add({"", "sync: " + label, metrics::fmt(s.mean_us, 0), metrics::fmt(s.min_us, 0),
             metrics::ratio(s.mean_us, load.mean_us), metrics::ratio(s.mean_us, floor.mean_us)});
  }
  std::cout << "\nsync vs load, server side, value sent as a parameter and returned (posts with "
               "3 tags each)\n"
            << t.render();

  /* The same, timed inside the server with the value already a jsonb datum:
   * what sync itself costs, without parsing and printing the value. */
  conn.exec(kDatumTimer);
  metrics::Table d({"value", "call", "mean us", "load / this"}, 2);
  for (const auto &v : values) {
    pg::Param filter = v.filter.empty() ? pg::Param() : pg::Param(v.filter);
    auto timed = [&](const std::string &kind, const std::string &payload) {
      return conn
          .exec("SELECT bench_datum($1::jsonb, $2, $3, $4::jsonb, $5::float8)",
                {v.value, payload, kind, filter, std::to_string(min_time)})
          .f64(0, 0);
    };
    double load_us = timed("load", "");
    std::string kb = metrics::fmt(static_cast<double>(v.value.size()) / 1024, 0) + " kB";
    d.add({v.label + " (" + kb + ")", "load()", metrics::fmt(load_us, 0), "1.00x"});
    for (const auto &k : kinds) {
      double us = timed("sync", k.payload);
      d.add({"", "sync: " + k.label, metrics::fmt(us, 1), metrics::ratio(load_us, us)});
    }
  }
  std::cout << "\nsync vs load inside the server, the value already a jsonb datum (targets: "
               "sync >= 10x cheaper than load for 100 posts, >= 50x for 10,000)\n"
            << d.render();
  held_round_trips(conn, conninfo, values, min_time);
  return sync_throughput(conn, values.front().value, values.front().filter, kinds, f);
}

}  // namespace bench

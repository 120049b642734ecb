/*
 * ectosync_bench: figures for ecto_sync, printed as tables with ratios.
 * Nothing here asserts a speed.
 *
 *   ectosync_bench write [--seconds S] [--clients 1,8] [--repeat N]
 *       pgbench custom scripts over posts, comments and posts_tags (insert,
 *       update, delete): no triggers vs ecto_sync capture (alone, and with
 *       a client using the tables, so that the worker reads every changed
 *       row ahead) vs a plpgsql pg_notify trigger.  TPS, latency, ratios.
 *   ectosync_bench write-setup --db NAME --config CONFIG
 *       a database as the write benchmark prepares it for one of its
 *       configurations ("no triggers", "ecto_sync capture", ...)
 *   ectosync_bench write-sql [--transactions N] [--seed S]
 *       the write benchmark's script as plain SQL: what
 *       scripts/callgrind-write.sh counts the instructions of
 *   ectosync_bench sync [--min-time S]
 *       server-side cost of sync(value, event) against load() and the floor
 *       SELECT $1::jsonb, for a 100-post and a 10,000-post value (3 tags
 *       each), per event kind.
 *   ectosync_bench latency [--seconds S] [--rates 100,1000,10000]
 *       commit-to-notify latency p50/p99/max at paced change rates.
 *
 * Connects through PG*; run it via scripts/bench.sh (a throwaway cluster).
 */
#include "blog.hpp"
#include "holder.hpp"
#include "metrics.hpp"
#include "pg.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using ectosync::Clock;

namespace {

std::map<std::string, std::string> flags(int argc, char **argv, int first) {
  std::map<std::string, std::string> out;
  for (int i = first; i < argc; i++) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || i + 1 >= argc)
      throw std::invalid_argument("expected --flag value, got " + a);
    out[a.substr(2)] = argv[++i];
  }
  return out;
}

std::vector<int> int_list(const std::string &s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(std::stoi(item));
  return out;
}

std::string env_or(const char *name, const char *fallback) {
  const char *v = std::getenv(name);
  return v ? v : fallback;
}

std::string fresh_db(const std::string &name) {
  pg::Connection admin;
  admin.exec("DROP DATABASE IF EXISTS " + admin.quote_ident(name) + " WITH (FORCE)");
  admin.exec("CREATE DATABASE " + admin.quote_ident(name));
  pg::Connection conn("dbname=" + name);
  conn.exec("SET client_min_messages = warning; CREATE EXTENSION ecto_sync");
  return "dbname=" + name;
}

/* ---------------------------------------------------------------- write */

const char *kWriteScript = R"(\set p random(1, 2000)
\set p2 random(1, 2000)
\set a random(1, 200)
\set t random(1, 40)
\set c random(1, 6000)
BEGIN;
UPDATE posts SET title = 'bench ' || :p || ' ' || random() WHERE id = :p;
INSERT INTO comments (post_id, author_id, body) VALUES (:p, :a, 'bench comment');
UPDATE comments SET body = 'edited ' || random() WHERE id = :c;
DELETE FROM comments WHERE id = :c + 1;
INSERT INTO posts_tags (post_id, tag_id) VALUES (:p2, :t) ON CONFLICT DO NOTHING;
DELETE FROM posts_tags WHERE post_id = :p AND tag_id = :t;
INSERT INTO posts (author_id, title) VALUES (:a, 'bench post') RETURNING id AS newpost \gset
DELETE FROM posts WHERE id = :newpost;
COMMIT;
)";

struct PgbenchResult {
  double tps = 0, latency_ms = 0;
  int64_t transactions = 0;
};

PgbenchResult run_pgbench(const std::string &db, const std::string &script, int clients,
                          int seconds) {
  std::string bin = "pgbench";
  if (const char *b = std::getenv("ECTOSYNC_PGBIN")) bin = std::string(b) + "/pgbench";
  std::string cmd = bin + " -n -f " + script + " -c " + std::to_string(clients) + " -j " +
                    std::to_string(std::min(clients, 2)) + " -T " + std::to_string(seconds) + " " +
                    db + " 2>&1";
  FILE *p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + cmd);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int rc = pclose(p);
  PgbenchResult r;
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(tps = ([0-9.]+))"))) r.tps = std::stod(m[1]);
  if (std::regex_search(out, m, std::regex(R"(latency average = ([0-9.]+) ms)")))
    r.latency_ms = std::stod(m[1]);
  if (std::regex_search(out, m, std::regex(R"(number of transactions actually processed: (\d+))")))
    r.transactions = std::stoll(m[1]);
  if (rc != 0 || r.tps <= 0) throw std::runtime_error("pgbench failed (" + cmd + "):\n" + out);
  return r;
}

void prepare_write_db(const std::string &conninfo, const std::string &config) {
  pg::Connection conn(conninfo);
  blog::create_schema(conn);
  blog::Scale s;
  s.posts = 2000;
  s.persons = 200;
  s.tags = 40;
  blog::seed(conn, 5, s);
  if (config.rfind("ecto_sync", 0) == 0) {
    conn.exec("SELECT ectosync.watch('posts', '[\"tags\", \"comments\"]')");
  } else if (config == "plpgsql pg_notify") {
    blog::install_notify_trigger(conn, {"posts", "comments", "posts_tags", "tags"});
  }
  /* Vacuumed now, and not by autovacuum at a random moment of one run. */
  for (const char *table : {"posts", "comments", "posts_tags"})
    conn.exec(std::string("ALTER TABLE ") + table + " SET (autovacuum_enabled = off)");
  conn.exec("VACUUM ANALYZE");
  conn.exec("CHECKPOINT");
}

/*
 * Waits until the database has no more client backends than `others`
 * besides this connection's: the CPU time of pgbench's backends counts
 * once the postmaster has reaped them.
 */
void wait_for_backends_to_exit(pg::Connection &conn, const std::string &db, int others) {
  for (int i = 0; i < 500; i++) {
    auto r = conn.exec(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = " + conn.quote_literal(db) +
        " AND pid <> pg_backend_pid()" + " AND backend_type = 'client backend'");
    if (r.i64(0, 0) <= others) {
      std::this_thread::sleep_for(50ms); /* (they leave the view before they exit) */
      return;
    }
    std::this_thread::sleep_for(10ms);
  }
}

/*
 * A client of a watched value, as far as the worker can tell: a session
 * whose ecto_sync calls (here, channels() every 200 ms) name the value's
 * tables, so that the worker reads their changed rows ahead of the
 * client's syncs (ectosync.load_window).
 */
class ActiveClient {
 public:
  void start(const std::string &conninfo, const std::string &table, const std::string &assocs) {
    thread_ = std::thread([this, conninfo, table, assocs] {
      try {
        pg::Connection c(conninfo);
        std::string sql = "SELECT ectosync.channels(" + c.quote_literal(table) + ", " +
                          c.quote_literal(assocs) + ")";
        while (!stop_) {
          c.exec(sql);
          std::this_thread::sleep_for(200ms);
        }
      } catch (const std::exception &e) {
        std::cerr << "active client: " << e.what() << std::endl;
      }
    });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  ~ActiveClient() { stop(); }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int bench_write(const std::map<std::string, std::string> &f) {
  int seconds = f.count("seconds") ? std::stoi(f.at("seconds")) : 5;
  auto clients = int_list(f.count("clients") ? f.at("clients") : "1,8");
  int repeat = f.count("repeat") ? std::max(1, std::stoi(f.at("repeat"))) : 2;
  char path[] = "/tmp/ectosync-bench-XXXXXX.sql";
  int fd = mkstemps(path, 4);
  if (fd < 0) throw std::runtime_error("mkstemps");
  ::close(fd);
  std::ofstream(path) << kWriteScript;
  std::string conninfo = fresh_db("ectosync_bench_write");
  const std::string active = "ecto_sync, client active";
  const std::vector<std::string> configs = {"no triggers", "ecto_sync capture", active,
                                            "plpgsql pg_notify"};
  std::map<std::pair<std::string, int>, PgbenchResult> results;
  /* TPS per (config, clients), round by round: a round's runs share
   * the machine's state, so their ratios vary less than the runs do */
  std::map<std::pair<std::string, int>, std::vector<double>> rounds;
  for (int c : clients)
    for (int round = 0; round < repeat; round++)
      for (size_t k = 0; k < configs.size(); k++) {
        /* each round starts with another configuration */
        const std::string &config = configs[(k + round) % configs.size()];
        prepare_write_db(conninfo, config);
        pg::Connection conn(conninfo);
        bool ecto = config.rfind("ecto_sync", 0) == 0;
        /* without a client, the worker reads no rows ahead */
        ActiveClient client;
        if (config == active) client.start(conninfo, "posts", R"(["tags", "comments"])");
        /* a warm-up run (caches, the worker's prepared plans), then the measured one */
        run_pgbench("ectosync_bench_write", path, c, 1);
        if (ecto) conn.exec("SELECT ectosync.wait_for_worker(60000)");
        conn.exec("CHECKPOINT");
        wait_for_backends_to_exit(conn, "ectosync_bench_write", config == active ? 1 : 0);
        int worker = 0;
        if (ecto)
          worker = static_cast<int>(conn.exec("SELECT worker_pid FROM ectosync.stats()").i64(0, 0));
        auto wcpu0 = worker ? metrics::process_cpu_seconds(worker) : std::nullopt;
        auto rows_read = [&] {
          return ecto ? conn.exec("SELECT rows_loaded FROM ectosync.stats").i64(0, 0) : 0;
        };
        int64_t rows0 = rows_read();
        auto cpu0 = metrics::server_cpu_seconds(env_or("ECTOSYNC_PGDATA", ""));
        auto r = run_pgbench("ectosync_bench_write", path, c, seconds);
        if (ecto) conn.exec("SELECT ectosync.wait_for_worker(60000)");
        client.stop();
        wait_for_backends_to_exit(conn, "ectosync_bench_write", 0);
        auto cpu1 = metrics::server_cpu_seconds(env_or("ECTOSYNC_PGDATA", ""));
        auto wcpu1 = worker ? metrics::process_cpu_seconds(worker) : std::nullopt;
        /* the best of the rounds: noise on a shared 2-core machine only ever slows a run */
        auto &best = results[{config, c}];
        if (r.tps > best.tps) best = r;
        rounds[{config, c}].push_back(r.tps);
        std::cout << "  " << config << ", " << c << " client(s): " << metrics::fmt(r.tps, 1)
                  << " TPS, " << metrics::fmt(r.latency_ms, 3) << " ms";
        if (cpu0 && cpu1)
          std::cout << ", server CPU " << metrics::fmt((*cpu1 - *cpu0) * 1e6 / r.transactions, 0)
                    << " us/transaction";
        if (wcpu0 && wcpu1)
          std::cout << " (of which the worker "
                    << metrics::fmt((*wcpu1 - *wcpu0) * 1e6 / r.transactions, 0) << ", reading "
                    << metrics::fmt(double(rows_read() - rows0) / r.transactions, 1) << " rows)";
        std::cout << std::endl;
      }
  std::remove(path);
  metrics::Table t({"config", "clients", "TPS", "latency ms", "TPS vs none", "latency vs none"}, 1);
  for (int c : clients)
    for (const auto &config : configs) {
      const auto &r = results[{config, c}];
      const auto &base = results[{"no triggers", c}];
      t.add({config, std::to_string(c), metrics::fmt(r.tps, 1), metrics::fmt(r.latency_ms, 3),
             metrics::ratio(r.tps, base.tps), metrics::ratio(r.latency_ms, base.latency_ms)});
    }
  std::cout << "\nwrite overhead (pgbench, best of " << repeat << " runs of " << seconds
            << " s; 1 transaction = 8 statements over posts, comments, posts_tags)\n"
            << t.render();
  metrics::Table per_round({"config", "clients", "median TPS vs none", "lowest", "highest"}, 1);
  for (int c : clients)
    for (const auto &config : configs) {
      if (config == "no triggers") continue;
      std::vector<double> ratios;
      const auto &mine = rounds[{config, c}], &base = rounds[{"no triggers", c}];
      for (size_t i = 0; i < mine.size() && i < base.size(); i++)
        if (base[i] > 0) ratios.push_back(mine[i] / base[i]);
      if (ratios.empty()) continue;
      std::sort(ratios.begin(), ratios.end());
      per_round.add({config, std::to_string(c),
                     metrics::fmt(metrics::percentile(ratios, 50), 2) + "x",
                     metrics::fmt(ratios.front(), 2) + "x", metrics::fmt(ratios.back(), 2) + "x"});
    }
  std::cout << "\nthe same, round by round (each run against the no-trigger run of its round)\n"
            << per_round.render();
  return 0;
}

/*
 * The write script as plain SQL, for a single-user backend under callgrind
 * (scripts/callgrind-write.sh): `transactions` copies with the \set
 * variables drawn from a fixed seed, and the \gset of an inserted id
 * replaced by the currval of the table's id sequence.  One statement per
 * line, as postgres --single reads them.
 */
int write_sql(const std::map<std::string, std::string> &f) {
  int transactions = f.count("transactions") ? std::stoi(f.at("transactions")) : 400;
  std::mt19937_64 rng(f.count("seed") ? std::stoull(f.at("seed")) : 1);
  std::vector<std::string> lines;
  {
    std::stringstream in(kWriteScript);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  const std::regex set_re(R"(^\\set (\w+) random\((\d+), (\d+)\)$)");
  const std::regex gset_re(R"(^INSERT INTO (\w+) (.*) RETURNING id AS (\w+) \\gset$)");
  for (int t = 0; t < transactions; t++) {
    std::vector<std::pair<std::string, std::string>> vars; /* longest name first */
    for (const auto &line : lines) {
      std::smatch m;
      if (std::regex_match(line, m, set_re)) {
        std::uniform_int_distribution<int64_t> d(std::stoll(m[2]), std::stoll(m[3]));
        vars.emplace_back(m[1], std::to_string(d(rng)));
        continue;
      }
      std::string sql = line;
      if (std::regex_match(line, m, gset_re)) {
        sql = "INSERT INTO " + m[1].str() + " " + m[2].str() + ";";
        vars.emplace_back(m[3],
                          "(SELECT currval(pg_get_serial_sequence('" + m[1].str() + "', 'id')))");
      }
      std::sort(vars.begin(), vars.end(),
                [](const auto &a, const auto &b) { return a.first.size() > b.first.size(); });
      for (const auto &[name, value] : vars) {
        std::string token = ":" + name;
        for (size_t at; (at = sql.find(token)) != std::string::npos;)
          sql.replace(at, token.size(), value);
      }
      std::cout << sql << "\n";
    }
  }
  return 0;
}

/* A database prepared as one configuration of the write benchmark. */
int write_setup(const std::map<std::string, std::string> &f) {
  std::string db = f.count("db") ? f.at("db") : "ectosync_bench_write";
  std::string config = f.count("config") ? f.at("config") : "ecto_sync capture";
  prepare_write_db(fresh_db(db), config);
  return 0;
}

/* ---------------------------------------------------------------- sync */

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
                    const Kinds &kinds, const std::map<std::string, std::string> &f) {
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

int bench_sync(const std::map<std::string, std::string> &f) {
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

/* ---------------------------------------------------------------- latency */

int bench_latency(const std::map<std::string, std::string> &f) {
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

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::cerr << "usage: ectosync_bench write|write-setup|write-sql|sync|latency|all [--flag value "
                 "...]\n";
    return 2;
  }
  std::string what = argv[1];
  try {
    auto f = flags(argc, argv, 2);
    if (what == "write") return bench_write(f);
    if (what == "write-sql") return write_sql(f);
    if (what == "write-setup") return write_setup(f);
    if (what == "sync") return bench_sync(f);
    if (what == "latency") return bench_latency(f);
    if (what == "all") {
      int rc = bench_write(f);
      rc |= bench_sync(f);
      rc |= bench_latency(f);
      return rc;
    }
    std::cerr << "unknown benchmark " << what << "\n";
    return 2;
  } catch (const std::exception &e) {
    std::cerr << "ectosync_bench " << what << ": " << e.what() << std::endl;
    return 1;
  }
}

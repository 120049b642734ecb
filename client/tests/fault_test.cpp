/*
 * Faults: the worker is terminated in the middle of the writes, then the
 * server restarts ($ECTOSYNC_PGCTL, from scripts/with-cluster.sh).  Holders
 * must converge (the worker is restarted and carries on from the queue) or
 * reload (a new epoch after the restart), and end equal to fresh loads.
 */
#include "common.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

#include <signal.h>

using namespace std::chrono_literals;

namespace {

/* Sets a stop flag when a scope ends, also by a failed ASSERT's return:
 * declared after the JoinAll of the threads that watch the flag. */
struct StopOnExit {
  std::atomic<bool> &flag;
  ~StopOnExit() { flag = true; }
};

/*
 * A thread per holder that syncs what it is notified of, until stop() or
 * the end of the scope (an assertion's early return too).
 */
struct Pumps {
  std::atomic<bool> stopping{false}, failed{false};
  std::vector<std::thread> threads;

  void start(std::vector<std::unique_ptr<ectosync::Holder>> &holders) {
    for (auto &h : holders)
      threads.emplace_back([this, h = h.get()] {
        try {
          while (!stopping) h->pump(50ms);
        } catch (const std::exception &e) {
          ADD_FAILURE() << h->options().name << ": " << e.what();
          failed = true;
        }
      });
  }
  void stop() {
    stopping = true;
    for (auto &t : threads)
      if (t.joinable()) t.join();
  }
  ~Pumps() { stop(); }
};

/* Writers that reconnect when the server goes away, until told to stop. */
struct Writers {
  std::string conninfo;
  blog::IdSpace &ids;
  uint64_t seed;
  std::atomic<bool> stop{false}, failed{false};
  std::atomic<int64_t> committed{0}, reconnects{0};
  std::vector<std::thread> threads;

  Writers(std::string c, blog::IdSpace &i, uint64_t s) : conninfo(std::move(c)), ids(i), seed(s) {}
  void start(int n) {
    for (int w = 0; w < n; w++)
      threads.emplace_back([this, w] {
        try {
          auto conn = std::make_unique<pg::Connection>(conninfo);
          auto work = std::make_unique<blog::Workload>(*conn, ids, seed + w, blog::Mix{});
          while (!stop) {
            try {
              int64_t before = work->stats().transactions;
              work->run_transaction();
              committed += work->stats().transactions - before;
              std::this_thread::sleep_for(2ms);
            } catch (const pg::Error &e) {
              /* the server restarts: reconnect, bounded */
              auto deadline = pg::Clock::now() + 30s;
              for (;;) {
                try {
                  conn->reconnect();
                  break;
                } catch (const pg::Error &) {
                  if (pg::Clock::now() > deadline) throw;
                  std::this_thread::sleep_for(100ms);
                }
              }
              reconnects++;
            }
          }
        } catch (const std::exception &e) {
          ADD_FAILURE() << "writer " << w << ": " << e.what();
          failed = true;
        }
      });
  }
  void finish() {
    stop = true;
    for (auto &t : threads)
      if (t.joinable()) t.join();
  }
  ~Writers() { finish(); }
};

/*
 * What the faults strike: two writers that reconnect, and a pump per
 * holder.  Tests finish the writers, then stop_pumps(); the writers go
 * first at destruction too.
 */
struct Traffic {
  blog::IdSpace ids;
  Pumps pumps;
  Writers writers;

  Traffic(pg::Connection &admin, const std::string &conninfo, uint64_t seed,
          std::vector<std::unique_ptr<ectosync::Holder>> &holders)
      : writers(conninfo, ids, seed) {
    ids.read(admin);
    writers.start(2);
    pumps.start(holders);
  }
  /* Whether every pump went on without failing. */
  bool stop_pumps() {
    pumps.stop();
    return !pumps.failed;
  }
};

void wait_for_commits(Writers &w, int64_t more, std::chrono::seconds timeout) {
  int64_t target = w.committed + more;
  auto deadline = pg::Clock::now() + timeout;
  while (w.committed < target && pg::Clock::now() < deadline && !w.failed)
    std::this_thread::sleep_for(10ms);
  ASSERT_GE(w.committed, target) << "writers made no progress";
}

using Shapes = std::vector<std::pair<std::string, std::string>>; /* table, assocs */

/* Holders of these shapes over the blog, watched, started. */
std::vector<std::unique_ptr<ectosync::Holder>> start_holders(
    pg::Connection &admin, const std::string &conninfo,
    const Shapes &shapes = {{"posts", R"(["tags", {"comments": ["author"]}])"},
                            {"persons", R"(["posts"])"}}) {
  std::vector<std::unique_ptr<ectosync::Holder>> holders;
  for (const auto &[table, assocs] : shapes) {
    admin.exec("SELECT ectosync.watch($1::regclass, $2::jsonb)", {table, assocs});
    ectosync::HolderOptions o;
    o.conninfo = conninfo;
    o.table = table;
    o.assocs = assocs;
    o.name = table;
    holders.push_back(std::make_unique<ectosync::Holder>(o));
    holders.back()->start();
  }
  return holders;
}

/* The worker of this database, waiting (bounded) for one to run. */
int wait_worker(pg::Connection &conn, std::chrono::seconds timeout) {
  auto deadline = pg::Clock::now() + timeout;
  for (;;) {
    int pid = testing_support::worker_pid(conn);
    if (pid || pg::Clock::now() > deadline) return pid;
    std::this_thread::sleep_for(50ms);
  }
}

}  // namespace

namespace {

/*
 * DDL beside writers: DROP EXTENSION (dropping triggers) and watch()
 * (creating them) lock the tables one by one and may deadlock with a
 * writer's transaction (40P01).  Retried, bounded.
 */
void exec_ddl(pg::Connection &conn, const std::string &sql, std::vector<pg::Param> params = {}) {
  for (int attempt = 1;; attempt++) {
    try {
      if (params.empty())
        conn.exec(sql);
      else
        conn.exec(sql, params);
      return;
    } catch (const pg::Error &e) {
      if (e.sqlstate() != "40P01" || attempt == 20) throw;
    }
  }
}

/*
 * After a SIGKILL: the postmaster terminates every connection, admin's too
 * (a new one made before it noticed would be terminated as well).  Waits
 * for that, then (bounded) until the server is back, and reconnects admin.
 */
void await_crash_reset(std::unique_ptr<pg::Connection> &admin, const std::string &conninfo) {
  auto deadline = pg::Clock::now() + 60s;
  for (;;) {
    try {
      admin->exec("SELECT pg_sleep(0.05)");
    } catch (const pg::Error &) {
      break;
    }
    ASSERT_LT(pg::Clock::now(), deadline) << "the crash did not end our connection";
  }
  admin.reset();
  while (!admin) {
    try {
      admin = std::make_unique<pg::Connection>(conninfo);
    } catch (const pg::Error &) {
      ASSERT_LT(pg::Clock::now(), deadline) << "the server did not come back";
      std::this_thread::sleep_for(100ms);
    }
  }
}

/* pg_ctl restart of the test cluster (scripts/with-cluster.sh's command). */
void restart_server(std::unique_ptr<pg::Connection> &admin, const std::string &conninfo) {
  const char *pgctl = std::getenv("ECTOSYNC_PGCTL");
  ASSERT_TRUE(pgctl && *pgctl) << "run under scripts/with-cluster.sh (ECTOSYNC_PGCTL is unset)";
  admin.reset();
  std::string cmd = std::string(pgctl) + " restart -m fast -w -t 60 >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "pg_ctl restart failed: " << cmd;
  admin = std::make_unique<pg::Connection>(conninfo);
}

/* An admin connection to conninfo's database, with the blog created and seeded. */
std::unique_ptr<pg::Connection> seeded_blog(const std::string &conninfo, uint64_t seed) {
  auto admin = std::make_unique<pg::Connection>(conninfo);
  blog::create_schema(*admin);
  blog::seed(*admin, seed, testing_support::small_scale());
  return admin;
}

/*
 * After faults: every holder converges to a fresh load (within timeout),
 * having reconnected and taken a new epoch when new_epoch_since is given.
 */
void expect_converged(const std::vector<std::unique_ptr<ectosync::Holder>> &holders,
                      std::chrono::seconds timeout, const char *after,
                      const std::string *new_epoch_since = nullptr) {
  for (auto &h : holders) {
    bool ok = h->converge(timeout);
    const auto &st = h->stats();
    std::cout << "  " << h->describe() << ": " << st.notifications << " notifications, " << st.syncs
              << " syncs, " << st.reloads << " reloads, " << st.reconnects << " reconnects"
              << std::endl;
    EXPECT_TRUE(ok) << h->describe() << " did not converge after " << after;
    if (!new_epoch_since) continue;
    EXPECT_GE(st.reconnects, 1) << h->describe() << " never reconnected";
    EXPECT_NE(h->epoch(), *new_epoch_since) << after << " must start a new epoch";
  }
}

}  // namespace

TEST(Fault, WorkerKilledAndServerRestarted) {
  const uint64_t seed = testing_support::seed_from_env();
  std::cout << "fault: seed " << seed << std::endl;
  testing_support::TestDatabase db("ectosync_client_fault");
  const std::string conninfo = db.conninfo();
  auto admin = seeded_blog(conninfo, seed);

  auto holders = start_holders(*admin, conninfo,
                               {{"posts", R"(["tags", {"comments": ["author"]}])"},
                                {"persons", R"([{"posts": ["tags"]}])"},
                                {"tags", "[]"},
                                {"comments", R"(["post"])"}});
  const std::string epoch_before = holders[0]->epoch();

  {
    Traffic traffic(*admin, conninfo, seed, holders);
    Writers &writers = traffic.writers;

    /* 1. terminate the worker while events flow */
    wait_for_commits(writers, 100, 30s);
    int pid = wait_worker(*admin, 20s);
    ASSERT_NE(pid, 0) << "no 'ecto_sync worker' in pg_stat_activity";
    auto killed = admin->exec("SELECT pg_terminate_backend($1::int)", {std::to_string(pid)});
    EXPECT_TRUE(killed.boolean(0, 0));
    wait_for_commits(writers, 100, 30s);
    int new_pid = wait_worker(*admin, 30s);
    EXPECT_NE(new_pid, 0) << "the worker did not come back";
    EXPECT_NE(new_pid, pid);

    /* 2. restart the server under everyone's feet */
    ASSERT_NO_FATAL_FAILURE(restart_server(admin, conninfo));
    wait_for_commits(writers, 100, 60s);
    writers.finish();
    EXPECT_FALSE(writers.failed);
    EXPECT_GT(writers.reconnects, 0) << "the writers never saw the restart";
    ASSERT_TRUE(traffic.stop_pumps());
  }

  expect_converged(holders, 30s, "the worker's termination and the restart", &epoch_before);
}

/*
 * SIGKILL of the worker: the postmaster treats it as a crash, terminates
 * every backend and resets shared memory (a new epoch).  Writers and
 * holders reconnect; the holders reload (or get ZE001 from the new epoch)
 * and converge.
 */
TEST(Fault, WorkerSigkilledResetsSharedMemory) {
  const uint64_t seed = testing_support::seed_from_env();
  std::cout << "sigkill: seed " << seed << std::endl;
  testing_support::TestDatabase db("ectosync_client_sigkill");
  const std::string conninfo = db.conninfo();
  auto admin = seeded_blog(conninfo, seed);
  auto holders = start_holders(*admin, conninfo);
  const std::string epoch_before = holders[0]->epoch();

  {
    Traffic traffic(*admin, conninfo, seed, holders);
    Writers &writers = traffic.writers;
    wait_for_commits(writers, 100, 30s);
    int pid = wait_worker(*admin, 20s);
    ASSERT_NE(pid, 0) << "no 'ecto_sync worker' in pg_stat_activity";
    ASSERT_EQ(::kill(pid, SIGKILL), 0) << "kill -9 " << pid << ": " << std::strerror(errno);
    ASSERT_NO_FATAL_FAILURE(await_crash_reset(admin, conninfo));
    wait_for_commits(writers, 100, 60s);
    writers.finish();
    EXPECT_FALSE(writers.failed);
    EXPECT_GT(writers.reconnects, 0) << "the writers never saw the crash";
    EXPECT_NE(wait_worker(*admin, 30s), 0) << "no worker after the crash";
    ASSERT_TRUE(traffic.stop_pumps());
  }
  expect_converged(holders, 30s, "the crash reset", &epoch_before);
}

/*
 * DROP EXTENSION while holders sync and writers write: holders get errors
 * (the functions are gone) or nothing, never a hang; the writers go on
 * (the triggers went with the extension).  After CREATE EXTENSION and
 * watch() again, the holders reload and converge: rows changed while the
 * extension was gone are not served stale from the cache.
 */
TEST(Fault, DropExtensionUnderHolders) {
  const uint64_t seed = testing_support::seed_from_env();
  std::cout << "drop extension: seed " << seed << std::endl;
  testing_support::TestDatabase db("ectosync_client_drop");
  const std::string conninfo = db.conninfo();
  pg::Connection admin(conninfo);
  blog::create_schema(admin);
  blog::seed(admin, seed, testing_support::small_scale());
  auto holders = start_holders(admin, conninfo);

  blog::IdSpace ids;
  ids.read(admin);
  std::atomic<bool> stop_holders{false};
  std::atomic<int64_t> holder_errors{0};
  std::vector<std::thread> pumps;
  testing_support::JoinAll join{pumps};
  StopOnExit stop_pumps{stop_holders};
  Writers writers(conninfo, ids, seed);
  writers.start(2);
  for (auto &h : holders)
    pumps.emplace_back([&, h = h.get()] {
      while (!stop_holders) {
        try {
          h->pump(50ms);
        } catch (const pg::Error &e) {
          holder_errors++; /* sync() or load() of a dropped extension */
          std::this_thread::sleep_for(10ms);
        }
      }
    });
  wait_for_commits(writers, 100, 30s);
  exec_ddl(admin, "SET client_min_messages = warning; DROP EXTENSION ecto_sync CASCADE");
  wait_for_commits(writers, 100, 30s);
  admin.exec("SET client_min_messages = warning; CREATE EXTENSION ecto_sync");
  for (const auto &h : holders)
    exec_ddl(admin, "SELECT ectosync.watch($1::regclass, $2::jsonb)",
             {h->options().table, h->options().assocs});
  wait_for_commits(writers, 100, 30s);
  stop_holders = true;
  for (auto &t : pumps) t.join(); /* nothing hangs: every pump returned */
  writers.finish();
  EXPECT_FALSE(writers.failed);
  std::cout << "  " << holder_errors << " holder errors while the extension was gone" << std::endl;

  for (auto &h : holders) {
    /* what an application does after such errors: load again */
    h->reload();
    bool ok = h->converge(30s);
    EXPECT_TRUE(ok) << h->describe() << " did not converge after DROP/CREATE EXTENSION";
  }
}

/*
 * A statement larger than ectosync.max_xact_events is queued as a RELOAD
 * marker: the holder's sync() says ZE001, the holder reloads, and its value
 * equals a fresh load.
 */
TEST(Fault, BulkStatementMakesHoldersReload) {
  testing_support::TestDatabase db("ectosync_client_bulk");
  const std::string conninfo = db.conninfo();
  pg::Connection admin(conninfo);
  blog::create_schema(admin);
  blog::seed(admin, 11, testing_support::small_scale());
  admin.exec(R"(SELECT ectosync.watch('posts', '["tags"]'))");
  ectosync::HolderOptions o;
  o.conninfo = conninfo;
  o.table = "posts";
  o.assocs = R"(["tags"])";
  o.name = "bulk";
  ectosync::Holder holder(o);
  holder.start();

  pg::Connection writer(conninfo);
  writer.exec("SET ectosync.max_xact_events = 10");
  auto r = writer.exec("UPDATE posts SET title = title || ' (bulk)' WHERE id <= 100");
  ASSERT_EQ(r.affected(), 100);
  writer.exec("UPDATE posts SET title = 'single' WHERE id = 101");
  EXPECT_TRUE(holder.converge(20s)) << "no convergence after a RELOAD marker";
  EXPECT_GE(holder.stats().reloads_ze001, 1) << "the RELOAD marker did not make the holder reload";
  auto titles = holder.connection().exec(
      "SELECT count(*) FROM jsonb_array_elements($1::jsonb->'rows') p WHERE p->>'title' LIKE "
      "'%(bulk)'",
      {holder.value()});
  EXPECT_EQ(titles.i64(0, 0), 100);
}

/*
 * More events than the event log holds (ectosync.event_log_size), in one
 * transaction: the oldest have left the log by the time the holder syncs
 * them, sync() says ZE001, the holder reloads once, and does not sync the
 * events its new value already reflects.
 */
TEST(Fault, ExpiredEventsMakeHoldersReloadOnce) {
  testing_support::TestDatabase db("ectosync_client_expired");
  pg::Connection admin(db.conninfo());
  const int64_t log_size = admin.exec("SHOW ectosync.event_log_size").i64(0, 0);
  const int64_t n = log_size + 1000;
  admin.exec("CREATE TABLE big (id int PRIMARY KEY, x int NOT NULL)");
  admin.exec("SELECT ectosync.watch('big')");
  ectosync::HolderOptions o;
  o.conninfo = db.conninfo();
  o.table = "big";
  o.name = "big";
  ectosync::Holder holder(o);
  holder.start();
  admin.exec("SET ectosync.max_xact_events = " + std::to_string(n + 10));
  auto r = admin.exec("INSERT INTO big SELECT g, g FROM generate_series(1, " + std::to_string(n) +
                      ") g");
  ASSERT_EQ(r.affected(), n);
  EXPECT_TRUE(holder.converge(90s));
  EXPECT_EQ(holder.row_count(), n);
  EXPECT_GE(holder.stats().reloads_ze001, 1);
  EXPECT_LE(holder.stats().reloads, 2) << "reloaded again and again";
  /* the reload covers every event notified before it: no round trip per batch after it */
  EXPECT_LE(holder.stats().round_trips, 12) << "events the reload covered were synced anyway";
  std::cout << "  " << holder.stats().notifications << " notifications, " << holder.stats().syncs
            << " synced, " << holder.stats().skipped << " skipped, " << holder.stats().reloads
            << " reloads" << std::endl;
}

/*
 * A backend terminated while hold() has attached a shared value, and taken
 * its turn, but not stored the name yet: a FATAL unwinds nothing, and its
 * exit must give the value and the turn up all the same.  The turn blocks
 * on a lock: the held value is a page, and a row that comes ahead of it
 * makes the turn read the page again from the locked table.
 */
TEST(Fault, BackendTerminatedInHoldLeavesTheSharedValue) {
  testing_support::TestDatabase db("ectosync_client_hold_killed");
  const std::string page = R"({"$query": {"order_by": "id", "limit": 2, "offset": 1}})";
  pg::Connection admin(db.conninfo()), holder(db.conninfo()), locker(db.conninfo());
  admin.exec("CREATE TABLE items (id int PRIMARY KEY)");
  admin.exec("INSERT INTO items SELECT i * 10 FROM generate_series(1, 5) i");
  admin.exec("SELECT ectosync.watch('items', $1::jsonb)", {page});
  holder.exec("SELECT ectosync.hold('page', 'items', $1::jsonb, listen => false)", {page});
  admin.exec("INSERT INTO items VALUES (5)");
  admin.exec("SELECT ectosync.wait_for_worker()");

  auto shared_by = [&] {
    return holder.exec("SELECT shared_by FROM ectosync.held() WHERE name = 'page'").opt(0, 0);
  };
  /* (under tiny shared memory the value may not be shared: then the
   * victim's hold() loads on its own, and there is nothing to give up) */
  const bool shared = shared_by().has_value();
  if (!testing_support::expect_pressure()) {
    ASSERT_TRUE(shared) << "the value was not shared";
  }

  std::atomic<int> victim_pid{0};
  std::atomic<bool> locked{false};
  std::vector<std::thread> victim;
  testing_support::JoinAll join_victim{victim};
  /* (destroyed first, also by a failed ASSERT: the victim must not wait
   * for the lock while the test joins it) */
  struct Unblock {
    pg::Connection &locker, &admin;
    std::atomic<int> &pid;
    ~Unblock() {
      try {
        locker.exec("ROLLBACK");
        if (pid) admin.exec("SELECT pg_terminate_backend($1::int)", {std::to_string(pid.load())});
      } catch (const pg::Error &) {
      }
    }
  } unblock{locker, admin, victim_pid};
  victim.emplace_back([&] {
    pg::Connection conn(db.conninfo());
    conn.exec("SELECT ectosync.load('items', $1::jsonb)", {page}); /* (its plan, before the lock) */
    victim_pid = static_cast<int>(conn.exec("SELECT pg_backend_pid()").i64(0, 0));
    while (!locked) std::this_thread::sleep_for(5ms);
    try {
      conn.exec("SELECT ectosync.hold('page, too', 'items', $1::jsonb)", {page});
      ADD_FAILURE() << "hold() was not terminated";
    } catch (const pg::Error &) {
    }
  });
  while (!victim_pid) std::this_thread::sleep_for(5ms);
  locker.exec("BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE");
  locked = true;
  const std::string pid = std::to_string(victim_pid.load());
  auto blocked = [&] {
    return admin
        .exec("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1::int", {pid})
        .boolean(0, 0);
  };
  for (int i = 0; i < 2000 && !blocked(); i++) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(blocked()) << "hold() did not wait for the locked table";
  if (shared) {
    EXPECT_EQ(shared_by(), "2") << "the victim's hold() had not attached the value";
  }
  admin.exec("SELECT pg_terminate_backend($1::int)", {pid});
  victim[0].join();
  for (int i = 0; i < 2000; i++) {
    if (admin.exec("SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", {pid}).i64(0, 0) ==
        0)
      break;
    std::this_thread::sleep_for(5ms);
  }
  locker.exec("ROLLBACK");

  /* The value is shared by one session again, and its turn is free: the
   * holder moves it on itself, and it equals a fresh load. */
  auto reply = holder.exec("SELECT ectosync.changes('page', 0)::text").str(0, 0);
  EXPECT_NE(reply.find("\"version\": 1"), std::string::npos) << reply;
  if (shared) {
    std::optional<std::string> now = shared_by();
    ASSERT_TRUE(now.has_value()) << "the holder left the shared value: its turn was stuck";
    EXPECT_EQ(*now, "1") << "the terminated backend still counts as a holder";
  }
  EXPECT_TRUE(holder
                  .exec("SELECT ectosync.changes('page', 0) -> 'patch' -> 0 -> 'value' -> 'rows' = "
                        "ectosync.load('items', $1::jsonb) -> 'rows'",
                        {page})
                  .boolean(0, 0));
}

/*
 * Soak: the random workload for $ECTOSYNC_SOAK_SECONDS (default 60) from
 * two writers, with the worker terminated every 3 seconds, killed with
 * SIGKILL once (a crash reset: new epoch) a third of the way in, and the
 * server restarted once two thirds of the way in.  At the end every holder
 * equals a fresh load.  scripts/test.sh runs the one-minute form;
 * scripts/demo.sh --soak SECONDS runs a longer one.
 */
TEST(Soak, KilledWorkersCrashAndRestart) {
  const int64_t seconds = testing_support::env_int("ECTOSYNC_SOAK_SECONDS", 60);
  const uint64_t seed = testing_support::seed_from_env();
  std::cout << "soak: " << seconds << " s, seed " << seed << std::endl;
  testing_support::TestDatabase db("ectosync_client_soak");
  const std::string conninfo = db.conninfo();
  auto admin = seeded_blog(conninfo, seed);
  auto holders = start_holders(*admin, conninfo);

  int terminations = 0;
  int64_t committed = 0;
  {
    Traffic traffic(*admin, conninfo, seed, holders);
    Writers &writers = traffic.writers;
    const Pumps &pumps = traffic.pumps;
    const auto start = pg::Clock::now(), end = start + std::chrono::seconds(seconds);
    bool crashed = false, restarted = false;
    while (pg::Clock::now() < end && !writers.failed && !pumps.failed) {
      std::this_thread::sleep_for(3s);
      double done = std::chrono::duration<double>(pg::Clock::now() - start).count() / seconds;
      int pid = wait_worker(*admin, 30s);
      ASSERT_NE(pid, 0) << "no worker " << terminations << " terminations in";
      if (!crashed && done > 1.0 / 3) {
        ASSERT_EQ(::kill(pid, SIGKILL), 0) << "kill -9 " << pid << ": " << std::strerror(errno);
        ASSERT_NO_FATAL_FAILURE(await_crash_reset(admin, conninfo));
        crashed = true;
      } else if (!restarted && done > 2.0 / 3) {
        ASSERT_NO_FATAL_FAILURE(restart_server(admin, conninfo));
        restarted = true;
      } else {
        admin->exec("SELECT pg_terminate_backend($1::int)", {std::to_string(pid)});
        terminations++;
      }
    }
    writers.finish();
    committed = writers.committed;
    EXPECT_FALSE(writers.failed);
    EXPECT_TRUE(crashed && restarted) << "the run was too short for the crash and the restart";
    EXPECT_GE(terminations, 1);
    ASSERT_TRUE(traffic.stop_pumps());
  }
  std::cout << "  " << committed << " transactions, " << terminations
            << " worker terminations, one crash reset, one restart" << std::endl;
  expect_converged(holders, 60s, "the soak");
}

/*
 * common.hpp: helpers shared by the client tests.  Every test connects
 * through the PG* environment variables (scripts/with-cluster.sh sets them)
 * and works in a database of its own, made afresh.
 */
#pragma once

#include "blog.hpp"
#include "holder.hpp"
#include "pg.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace testing_support {

/* Drop and create database `name` (with ecto_sync); returns its conninfo. */
std::string fresh_database(const std::string &name, bool with_extension = true);

/*
 * A database made afresh for one test and dropped when the test ends, so
 * that its ecto_sync worker stops (workers count against
 * max_worker_processes).  Declare it before the connections that use it.
 */
class TestDatabase {
 public:
  explicit TestDatabase(std::string name, bool with_extension = true);
  ~TestDatabase();
  TestDatabase(const TestDatabase &) = delete;
  TestDatabase &operator=(const TestDatabase &) = delete;
  const std::string &conninfo() const { return conninfo_; }

 private:
  std::string name_, conninfo_;
};

/* A seed: $ECTOSYNC_SEED if set, else a random one.  Printed by the caller. */
uint64_t seed_from_env();

/* An integer from the environment, or fallback. */
int64_t env_int(const char *name, int64_t fallback);

/* True when the tests were started with --long (or ECTOSYNC_LONG=1). */
bool long_run();
void set_long_run(bool on);

/*
 * True when ECTOSYNC_EXPECT_PRESSURE=1: the server runs with tiny shared
 * memory (scripts/test.sh's second run), so queue overflow (RELOAD
 * markers), cache eviction and event-log expiry must happen, and the tests
 * check that they did.
 */
bool expect_pressure();

/*
 * The extra writer of the pressure runs: big statements over many rows, so
 * that the tiny cache evicts, every fourth one (limit 60) past
 * ectosync.max_xact_events (a RELOAD marker).  statement(limit) makes the
 * i-th statement; it runs while keep_going(i) and !failed, 5 ms apart.
 * Deadlocks against the other writers are expected and ignored; any other
 * error is a test failure and sets failed.
 */
void pressure_writer(const std::string &conninfo,
                     const std::function<std::string(int limit)> &statement,
                     const std::function<bool(int i)> &keep_going, std::atomic<bool> &failed,
                     const std::string &label);

/* The counters of ectosync.stats() that show pressure, for this database. */
struct Pressure {
  int64_t reload_markers = 0, events_dropped = 0, cache_evictions = 0;
};
Pressure pressure(pg::Connection &conn);

/* Rows in which a held value and a fresh load differ (up to 10), for messages. */
std::string difference(ectosync::Holder &h);

/* A small blog domain for tests: fewer rows, so that changes collide. */
blog::Scale small_scale();

/* An association of ectosync.associations(table). */
struct AssocInfo {
  std::string name, kind, target;
  std::vector<std::string> owner_columns;
};
std::vector<AssocInfo> associations(pg::Connection &conn, const std::string &table);

/* A random nested assocs spec (JSON text) rooted at table, up to depth. */
std::string random_shape(pg::Connection &conn, std::mt19937_64 &rng, const std::string &table,
                         int depth);

/* Maybe ("" when not) a filter on one of the root's single-column foreign
 * keys, equal to a value the column has now. */
std::string random_filter(pg::Connection &conn, std::mt19937_64 &rng, const std::string &table);

/* The pid of this database's ecto_sync worker, 0 when none runs. */
int worker_pid(pg::Connection &conn);

/* The last event seq of the current database (ectosync.stats()). */
uint64_t last_seq(pg::Connection &conn);

/*
 * Joins threads when leaving a scope (also when an assertion returns early),
 * first setting *stop when given: threads that loop until told to stop.
 */
struct JoinAll {
  std::vector<std::thread> &threads;
  std::atomic<bool> *stop = nullptr;
  ~JoinAll() {
    if (stop) *stop = true;
    for (auto &t : threads)
      if (t.joinable()) t.join();
  }
};

}  // namespace testing_support

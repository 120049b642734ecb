/*
 * Many held values over one connection (client/lib/hub.hpp): hundreds of
 * per-author values and a few shared windows on one session, random
 * writers, one wait for all of them; every value ends equal to a fresh
 * load, and only the values a change concerns are called back.  A hub
 * whose backend is killed reconnects and holds every value again.  Three
 * hubs of random shapes under writers, bulk statements (RELOAD markers)
 * and a terminated worker end exact too.
 */
#include "common.hpp"
#include "hub.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <thread>

using namespace std::chrono_literals;

namespace {

struct Fixture {
  explicit Fixture(const char *name) : db(name), admin(db.conninfo()) {
    blog::create_schema(admin);
    blog::seed(admin, 7, testing_support::small_scale());
    admin.exec("SELECT ectosync.watch('posts', '[\"comments\"]')");
    ids.read(admin);
  }
  testing_support::TestDatabase db;
  pg::Connection admin;
  blog::IdSpace ids;
};

/*
 * What a wait_changes(20000) under way in session returns while act()
 * runs: "name rows" of its one row (the rows of the value sent whole), and
 * whether it came back within 15 s of act().
 */
std::pair<std::string, bool> woken_by(pg::Connection &session, const std::function<void()> &act) {
  std::string got;
  std::thread waiter([&] {
    auto r = session.exec(
        "SELECT name || ' ' || pg_catalog.jsonb_array_length(patch -> 0 -> 'value' -> 'rows') "
        "FROM ectosync.wait_changes(20000)");
    got = r.rows() == 1 ? r.str(0, 0) : std::to_string(r.rows()) + " rows";
  });
  std::this_thread::sleep_for(200ms);
  auto start = pg::Clock::now();
  try {
    act();
  } catch (...) {
    waiter.join();
    throw;
  }
  waiter.join();
  return {got, pg::Clock::now() - start < 15s};
}

/* Holders of per-author posts with comments, and windows of the newest posts. */
std::vector<std::unique_ptr<ectosync::Holder>> make_holders(Fixture &f, ectosync::Hub &hub, int n) {
  auto authors = f.admin.exec("SELECT id FROM persons ORDER BY id");
  std::vector<std::unique_ptr<ectosync::Holder>> out;
  for (int i = 0; i < n; i++) {
    ectosync::HolderOptions o;
    o.conninfo = f.db.conninfo();
    o.hub = &hub;
    o.table = "posts";
    o.name = "value " + std::to_string(i);
    if (i % 50 == 0) {
      o.assocs =
          R"({"$query": {"order_by": {"inserted_at": "desc"}, "limit": 10}, "comments": {}})";
    } else {
      o.assocs = R"({"$query": {"order_by": "title"}, "comments": {}})";
      o.filter = "{\"author_id\": " + authors.str(i % authors.rows(), 0) + "}";
    }
    out.push_back(std::make_unique<ectosync::Holder>(o));
  }
  return out;
}

/* A holder on hub of every row of table, held under the table's name. */
ectosync::HolderOptions table_holder(Fixture &f, ectosync::Hub &hub, const std::string &table) {
  ectosync::HolderOptions o;
  o.conninfo = f.db.conninfo();
  o.hub = &hub;
  o.table = table;
  o.name = table;
  return o;
}

void write(Fixture &f, uint64_t seed, int transactions) {
  pg::Connection conn(f.db.conninfo());
  blog::Workload work(conn, f.ids, seed, blog::Mix{});
  for (int i = 0; i < transactions; i++) work.run_transaction();
}

/* Pumps until the hub is quiet, then checks every value against a fresh load. */
void expect_all_fresh(Fixture &f, ectosync::Hub &hub,
                      std::vector<std::unique_ptr<ectosync::Holder>> &holders) {
  f.admin.exec("SELECT ectosync.wait_for_worker()");
  while (hub.pump(300ms) > 0) {
  }
  int diverged = 0;
  for (auto &h : holders)
    if (!h->matches_fresh_load()) diverged++;
  EXPECT_EQ(diverged, 0) << "of " << holders.size() << " values on one connection";
}

}  // namespace

TEST(Hub, ManyValuesOnOneConnection) {
  Fixture f("ectosync_client_hub");
  ectosync::Hub hub(f.db.conninfo());
  auto holders = make_holders(f, hub, 400);
  std::map<std::string, int> called;
  for (auto &h : holders) hub.add(*h, [&](ectosync::Holder &x) { called[x.held_name()]++; });
  EXPECT_EQ(f.admin
                .exec("SELECT count(DISTINCT pid) FROM pg_stat_activity WHERE application_name "
                      "= 'ectosync hub'")
                .i64(0, 0),
            1);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    write(f, 11, 300);
    done = true;
  });
  while (!done) hub.pump(100ms);
  writer.join();
  expect_all_fresh(f, hub, holders);
  /* The writes reached some values, not all: callbacks ran for those. */
  EXPECT_GT(called.size(), 0u);
  EXPECT_LT(called.size(), holders.size());
  std::cout << "hub: " << holders.size() << " values, " << called.size() << " changed, "
            << hub.round_trips() << " round trips" << std::endl;
  /* The holders of one value (the window of the newest posts) keep one
   * document, which every change moved for all of them at once ... */
  std::set<const ectosync::Json *> window_docs;
  for (size_t i = 0; i < holders.size(); i += 50) window_docs.insert(holders[i]->document().get());
  EXPECT_EQ(window_docs.size(), 1u);
  /* ... and a reply to one of them alone leaves the others' as it was. */
  std::string before = holders[50]->value();
  ectosync::Json patch = ectosync::parse_json(R"([{"op":"replace","path":"/seq","value":0}])");
  ectosync::CompiledPatch compiled(patch);
  holders[0]->apply_reply(patch, compiled, holders[0]->version(), 0, nullptr);
  EXPECT_EQ(holders[50]->value(), before);
  EXPECT_NE(holders[0]->value(), before);
}

TEST(Hub, ReconnectsAndHoldsEveryValueAgain) {
  Fixture f("ectosync_client_hub_reconnect");
  ectosync::Hub hub(f.db.conninfo());
  auto holders = make_holders(f, hub, 60);
  for (auto &h : holders) hub.add(*h);
  f.admin.exec("SELECT pg_terminate_backend($1)", {std::to_string(hub.connection().backend_pid())});
  write(f, 12, 100);
  for (int i = 0; i < 5; i++) hub.pump(200ms);
  EXPECT_EQ(hub.reconnects(), 1);
  expect_all_fresh(f, hub, holders);
}

/*
 * A callback that throws does not stop the reply: every value of it is
 * applied (the server has moved them all on) and every other callback
 * runs; then the exception reaches the caller of pump().
 */
TEST(Hub, ACallbackThatThrowsLeavesNoValueBehind) {
  Fixture f("ectosync_client_hub_throw");
  ectosync::Hub hub(f.db.conninfo());
  auto holders = make_holders(f, hub, 40);
  std::set<std::string> called;
  for (auto &h : holders)
    hub.add(*h, [&](ectosync::Holder &x) {
      called.insert(x.held_name());
      if (x.held_name() == "value 1") throw std::runtime_error("the application's bug");
    });
  f.admin.exec("UPDATE posts SET title = title || '!'");
  f.admin.exec("SELECT ectosync.wait_for_worker()");
  EXPECT_THROW(hub.pump(5000ms), std::runtime_error);
  int diverged = 0;
  for (auto &h : holders)
    if (!h->matches_fresh_load()) diverged++;
  EXPECT_EQ(diverged, 0) << "values left behind by a callback that threw";
  size_t moved = 0; /* (an author without posts: a value the update left alone) */
  for (auto &h : holders) moved += h->version() != 0;
  EXPECT_GT(moved, 2u);
  EXPECT_EQ(called.size(), moved);
}

/*
 * At a reconnect, a value that cannot be held again (its table was dropped
 * meanwhile) keeps its error; the other values are held again, and their
 * callbacks run, since they may have changed while the hub was away.
 */
TEST(Hub, AValueThatCannotBeHeldAgainLeavesTheOthers) {
  Fixture f("ectosync_client_hub_rehold");
  f.admin.exec("CREATE TABLE scratch (id int PRIMARY KEY)");
  f.admin.exec("SELECT ectosync.watch('scratch')");
  ectosync::Hub hub(f.db.conninfo());
  auto holders = make_holders(f, hub, 30);
  ectosync::Holder scratch(table_holder(f, hub, "scratch"));
  std::set<std::string> called;
  auto note = [&](ectosync::Holder &x) { called.insert(x.held_name()); };
  hub.add(scratch, note);
  for (auto &h : holders) hub.add(*h, note);
  f.admin.exec("SELECT pg_terminate_backend($1)", {std::to_string(hub.connection().backend_pid())});
  f.admin.exec("DROP TABLE scratch");
  write(f, 13, 50);
  auto start = pg::Clock::now();
  hub.pump(200ms);
  EXPECT_LT(pg::Clock::now() - start, 10s) << "the reconnect gave up on every value for one";
  EXPECT_EQ(hub.reconnects(), 1);
  EXPECT_NE(hub.error(scratch.held_name()), "");
  EXPECT_EQ(called.size(), holders.size());
  EXPECT_EQ(called.count(scratch.held_name()), 0u);
  hub.remove(scratch);
  EXPECT_EQ(hub.error(scratch.held_name()), "");
  expect_all_fresh(f, hub, holders);
}

/*
 * A value whose patch fails (its copy went wrong) and that cannot be held
 * again (its table was renamed, and the holder names it by the old name):
 * it keeps the error, and the rest of the reply is applied all the same.
 */
TEST(Hub, AValueThatFailsMidReplyLeavesTheOthers) {
  Fixture f("ectosync_client_hub_midreply");
  f.admin.exec("CREATE TABLE scratch (id int PRIMARY KEY, x text)");
  f.admin.exec("INSERT INTO scratch VALUES (1, 'a')");
  f.admin.exec("SELECT ectosync.watch('scratch')");
  ectosync::Hub hub(f.db.conninfo());
  ectosync::Holder scratch(table_holder(f, hub, "scratch"));
  hub.add(scratch);
  auto holders = make_holders(f, hub, 20);
  for (auto &h : holders) hub.add(*h);
  f.admin.exec("ALTER TABLE scratch RENAME TO scratch_renamed");
  f.admin.exec("SELECT ectosync.wait_for_worker()");
  while (hub.pump(300ms) > 0) {
  }
  /* (the copy goes wrong: its patch cannot apply) */
  const_cast<ectosync::Json &>(*scratch.document()).find("rows")->items.clear();
  f.admin.exec("UPDATE scratch_renamed SET x = 'b'");
  f.admin.exec("UPDATE posts SET title = title || '?'");
  f.admin.exec("SELECT ectosync.wait_for_worker()");
  EXPECT_NO_THROW(hub.pump(5000ms));
  EXPECT_NE(hub.error(scratch.held_name()), "");
  int diverged = 0;
  for (auto &h : holders)
    if (!h->matches_fresh_load()) diverged++;
  EXPECT_EQ(diverged, 0) << "values left behind by one that failed";
  hub.remove(scratch);
}

namespace {

/* A shape held by a holder of the adversarial test below. */
struct Shape {
  std::string table, assocs, filter;
};

/*
 * The structures the values of the adversarial test take: windows of the
 * newest posts with windows of their newest comments, and random roots
 * with random nested associations (random_shape).  A pool, so that few
 * watches (each of which re-resolves them all) cover hundreds of values.
 */
std::vector<Shape> shape_pool(pg::Connection &admin, std::mt19937_64 &rng, int random_shapes) {
  std::vector<Shape> pool = {
      {"public.posts",
       R"({"$query": {"order_by": {"inserted_at": "desc"}, "limit": 5}, "comments": {"$query": {"order_by": {"id": "desc"}, "limit": 2}}})",
       ""},
      {"public.posts",
       R"({"$query": {"order_by": {"inserted_at": "desc"}, "limit": 3}, "comments": {"$query": {"order_by": {"id": "desc"}, "limit": 2}, "author": {}}, "tags": {}})",
       ""},
      {"public.posts",
       R"({"$query": {"order_by": {"id": "desc"}, "limit": 4}, "author": {}, "comments": {"$query": {"order_by": {"id": "asc"}, "limit": 1}}})",
       ""},
      {"public.posts",
       R"({"$query": {"order_by": "title"}, "comments": {"$query": {"order_by": {"id": "desc"}, "limit": 2}}, "labels": {}})",
       ""}};
  const size_t windows = pool.size();
  std::set<std::pair<std::string, std::string>> seen;
  for (int i = 0; i < random_shapes * 3 && pool.size() < windows + random_shapes; i++) {
    Shape s;
    s.table = blog::kTables[rng() % blog::kTables.size()];
    s.assocs = testing_support::random_shape(admin, rng, s.table, 3);
    if (seen.insert({s.table, s.assocs}).second) pool.push_back(s);
  }
  return pool;
}

/*
 * A value of a shape of the pool: windows of posts of one author (70%) or
 * of all; random shapes mostly filtered on a foreign key (random_filter).
 * A filtered value is the session's own (wait_changes() may pass it over);
 * an unfiltered one is shared with the other sessions holding it.
 */
Shape random_value(pg::Connection &admin, std::mt19937_64 &rng, const std::vector<Shape> &pool,
                   const std::vector<std::string> &authors) {
  const size_t windows = 4;
  Shape s =
      rng() % 100 < 40 ? pool[rng() % windows] : pool[windows + rng() % (pool.size() - windows)];
  if (s.table == "public.posts" && s.assocs[0] == '{') {
    if (rng() % 100 < 70) s.filter = "{\"author_id\": " + authors[rng() % authors.size()] + "}";
    return s;
  }
  for (int i = 0; i < 3 && s.filter.empty(); i++)
    s.filter = testing_support::random_filter(admin, rng, s.table);
  return s;
}

/* Statements past ectosync.max_xact_events (the session's is 20): RELOAD
 * markers for their tables.  Conflicts with the writers are ignored. */
void bulk_statement(pg::Connection &conn, int i) {
  static const std::vector<std::string> statements = {
      "UPDATE posts SET title = 'bulk ' || md5(random()::text) WHERE id IN (SELECT id FROM posts "
      "ORDER BY random() LIMIT 40)",
      "UPDATE comments SET body = 'bulk ' || md5(random()::text) WHERE id IN (SELECT id FROM "
      "comments ORDER BY random() LIMIT 40)",
      "UPDATE persons SET name = 'bulk ' || md5(random()::text) WHERE id IN (SELECT id FROM "
      "persons ORDER BY random() LIMIT 30)",
      "UPDATE comments SET post_id = (SELECT id FROM posts ORDER BY random() LIMIT 1) WHERE id IN "
      "(SELECT id FROM comments ORDER BY random() LIMIT 30)",
      "UPDATE posts SET author_id = (SELECT id FROM persons ORDER BY random() LIMIT 1) WHERE id IN "
      "(SELECT id FROM posts ORDER BY random() LIMIT 30)"};
  try {
    conn.exec(statements[static_cast<size_t>(i) % statements.size()]);
  } catch (const pg::ConnectionLost &) {
    throw;
  } catch (const pg::Error &e) {
    /* deadlocks and serialization failures (40), rows gone meanwhile (23) */
    if (e.sqlstate().compare(0, 2, "40") != 0 && e.sqlstate().compare(0, 2, "23") != 0) throw;
  }
}

std::string fresh_load(ectosync::Holder &h) {
  return h.connection()
      .exec("SELECT ectosync.load($1::regclass, $2::jsonb, $3::jsonb)::text",
            {h.options().table, h.options().assocs,
             h.options().filter.empty() ? pg::Param() : pg::Param(h.options().filter)})
      .str(0, 0);
}

double since(pg::Clock::time_point t) {
  return std::chrono::duration<double>(pg::Clock::now() - t).count();
}

/* Pumps until two waits of quiet in a row. */
void pump_until_quiet(ectosync::Hub &hub) {
  auto deadline = pg::Clock::now() + 20s;
  for (int quiet = 0; quiet < 2 && pg::Clock::now() < deadline;)
    quiet = hub.pump(300ms) > 0 ? 0 : quiet + 1;
}

}  // namespace

/*
 * The shortcuts of wait_changes(timeout) (values passed over without
 * reading the event log when their interest matched nothing after their
 * seq) and of sync_parts() (events the published interest does not match
 * are skipped) must never leave a value stale.  Three hubs hold random
 * shapes (filtered ones are the session's own: those the shortcuts apply
 * to; unfiltered ones are shared between sessions) and windows of posts,
 * while random writers write, bulk statements past max_xact_events queue
 * RELOAD markers, and the worker is terminated once (it restarts).  At the
 * end every value equals a fresh load.  Seeded: ECTOSYNC_SEED replays the
 * shapes and the writers' statement streams (not their interleaving).
 * ECTOSYNC_HUB_HOLDERS (default 150 per hub) and ECTOSYNC_HUB_SECONDS
 * (default 5) size it; ECTOSYNC_HUB_BULK=0 and ECTOSYNC_HUB_KILL=0 leave
 * the bulk statements or the worker's termination out.
 */
TEST(Hub, RandomShapesStayExactUnderFaults) {
  const uint64_t seed = testing_support::seed_from_env();
  const int kHubs = 3, kWriters = 3;
  const int per_hub = static_cast<int>(testing_support::env_int("ECTOSYNC_HUB_HOLDERS", 150));
  const int64_t seconds = testing_support::env_int("ECTOSYNC_HUB_SECONDS", 5);
  /* (to narrow a failure down: 0 leaves a fault out) */
  const bool bulk_markers = testing_support::env_int("ECTOSYNC_HUB_BULK", 1) != 0;
  const bool kill_worker = testing_support::env_int("ECTOSYNC_HUB_KILL", 1) != 0;
  std::cout << "hub faults: seed " << seed << " (replay with ECTOSYNC_SEED=" << seed << "), "
            << kHubs << " hubs of " << per_hub << " values, " << seconds << " s" << std::endl;
  SCOPED_TRACE("seed " + std::to_string(seed));

  testing_support::TestDatabase db("ectosync_client_hub_faults");
  const std::string conninfo = db.conninfo();
  pg::Connection admin(conninfo);
  blog::create_schema(admin);
  blog::seed(admin, seed, testing_support::small_scale());
  std::vector<std::string> authors;
  {
    auto r = admin.exec("SELECT id FROM persons ORDER BY id");
    for (int i = 0; i < r.rows(); i++) authors.push_back(r.str(i, 0));
  }

  const auto t0 = pg::Clock::now();
  std::mt19937_64 rng(seed);
  const std::vector<Shape> pool = shape_pool(admin, rng, 24);
  for (const Shape &s : pool)
    admin.exec("SELECT ectosync.watch($1::regclass, $2::jsonb)", {s.table, s.assocs});
  std::vector<std::unique_ptr<ectosync::Hub>> hubs;
  std::vector<std::vector<std::unique_ptr<ectosync::Holder>>> holders(kHubs);
  int filtered = 0;
  for (int k = 0; k < kHubs; k++) {
    hubs.push_back(std::make_unique<ectosync::Hub>(conninfo));
    for (int i = 0; i < per_hub; i++) {
      Shape s = random_value(admin, rng, pool, authors);
      ectosync::HolderOptions o;
      o.conninfo = conninfo;
      o.hub = hubs[k].get();
      o.table = s.table;
      o.assocs = s.assocs;
      o.filter = s.filter;
      o.name = "hub " + std::to_string(k) + " value " + std::to_string(i);
      filtered += !s.filter.empty();
      holders[k].push_back(std::make_unique<ectosync::Holder>(o));
      hubs[k]->add(*holders[k].back());
    }
  }
  std::cout << "  " << pool.size() << " shapes watched, " << filtered << " of " << kHubs * per_hub
            << " values filtered, held in " << since(t0) << " s" << std::endl;

  blog::IdSpace ids;
  ids.read(admin);
  const auto pressure_before = testing_support::pressure(admin);
  std::atomic<bool> stop_writers{false}, stop_pumps{false}, failed{false};
  std::atomic<int64_t> committed{0};
  std::vector<std::thread> pumps, writers;
  testing_support::JoinAll join_pumps{pumps, &stop_pumps};
  testing_support::JoinAll join_writers{writers, &stop_writers};
  for (int k = 0; k < kHubs; k++)
    pumps.emplace_back([&, k] {
      try {
        while (!stop_pumps && !failed) hubs[k]->pump(100ms);
      } catch (const std::exception &e) {
        ADD_FAILURE() << "hub " << k << ": " << e.what();
        failed = true;
      }
    });
  for (int w = 0; w < kWriters; w++)
    writers.emplace_back([&, w] {
      try {
        pg::Connection conn(conninfo);
        blog::Workload work(conn, ids, seed * 31 + static_cast<uint64_t>(w), blog::Mix{});
        while (!stop_writers && !failed) {
          int64_t before = work.stats().transactions;
          work.run_transaction();
          committed += work.stats().transactions - before;
          std::this_thread::sleep_for(5ms); /* the hubs must keep up, mostly */
        }
      } catch (const std::exception &e) {
        ADD_FAILURE() << "writer " << w << ": " << e.what();
        failed = true;
      }
    });

  /* The faults, spread over the run: a bulk statement every 10th, the
   * worker terminated at 4/10. */
  pg::Connection bulk(conninfo);
  bulk.exec("SET ectosync.max_xact_events = 20");
  int bulks = 0, terminated_pid = 0;
  const auto start = pg::Clock::now();
  const auto step = std::chrono::milliseconds(seconds * 100);
  for (int i = 1; i <= 10 && !failed; i++) {
    std::this_thread::sleep_until(start + i * step);
    if (i == 4 && kill_worker) {
      terminated_pid = testing_support::worker_pid(admin);
      ASSERT_NE(terminated_pid, 0) << "no ecto_sync worker to terminate";
      admin.exec("SELECT pg_terminate_backend($1::int)", {std::to_string(terminated_pid)});
    } else if ((i % 2 == 1 || i == 10) && bulk_markers) {
      bulk_statement(bulk, static_cast<int>(rng() % 5));
      bulks++;
    }
  }
  stop_writers = true;
  for (auto &t : writers) t.join();
  ASSERT_FALSE(failed);
  /* The worker came back, and has loaded every committed write. */
  int new_pid = 0;
  for (int i = 0; i < 200 && (new_pid = testing_support::worker_pid(admin)) == terminated_pid; i++)
    std::this_thread::sleep_for(50ms);
  EXPECT_NE(new_pid, 0) << "the worker did not come back";
  if (kill_worker) {
    EXPECT_NE(new_pid, terminated_pid) << "the worker was not terminated";
  }
  admin.exec("SELECT ectosync.wait_for_worker(30000)");
  stop_pumps = true;
  for (auto &t : pumps) t.join();
  ASSERT_FALSE(failed);

  auto p = testing_support::pressure(admin);
  std::cout << "  " << committed << " transactions, " << bulks << " bulk statements, "
            << p.reload_markers - pressure_before.reload_markers
            << " RELOAD markers; pumps done at " << since(t0) << " s" << std::endl;
  EXPECT_GT(committed, 100) << "the writers wrote too little to test anything";
  if (bulk_markers) {
    EXPECT_GT(p.reload_markers, pressure_before.reload_markers) << "no RELOAD marker was queued";
  }

  int diverged = 0;
  for (int k = 0; k < kHubs; k++) {
    pump_until_quiet(*hubs[k]);
    int changed = 0;
    for (auto &h : holders[k]) {
      changed += h->stats().patches > 0;
      if (h->matches_fresh_load()) continue;
      if (diverged++ > 0) { /* the first one in full, the others in a line */
        auto info = h->connection().exec(
            "SELECT coalesce(shared_by::text, 'own'), version FROM ectosync.held() WHERE name = $1",
            {h->held_name()});
        std::cout << "  also diverged: " << h->options().name << " (" << h->describe()
                  << "), shared_by " << (info.rows() ? info.str(0, 0) : "?") << std::endl;
        continue;
      }
      const std::string held = h->value(), fresh = fresh_load(*h);
      const std::string diff = testing_support::difference(*h);
      /* Stale for good, or only slow?  Pump some more (nothing is written now). */
      for (int i = 0; i < 10; i++) hubs[k]->pump(200ms);
      bool later = h->matches_fresh_load();
      auto info = h->connection().exec(
          "SELECT version, seq, shared_by, notifications, parts FROM ectosync.held() WHERE name = "
          "$1",
          {h->held_name()});
      std::string held_info = info.rows()
                                  ? "version " + info.str(0, 0) + ", seq " + info.str(0, 1) +
                                        ", shared_by " + info.str(0, 2) + ", notifications " +
                                        info.str(0, 3) + ", parts " + info.str(0, 4)
                                  : "not held";
      /* The event log, for the analysis (seed-specific). */
      const std::string log = "/tmp/ectosync_hub_faults_" + std::to_string(seed) + ".events";
      admin.exec("COPY (SELECT * FROM ectosync._events_since(0)) TO '" + log + "'");
      /* The session's copy (the whole of it: a client version that is not its own) */
      auto server = h->connection().exec(
          "WITH c AS (SELECT ectosync.changes($1, -1) AS r) SELECT r->>'version', "
          "((r->'patch'->0->'value') - 'seq') = (ectosync.load($2::regclass, $3::jsonb, "
          "$4::jsonb) - 'seq' - 'seal') FROM c",
          {h->held_name(), h->options().table, h->options().assocs,
           h->options().filter.empty() ? pg::Param() : pg::Param(h->options().filter)});
      std::cout << "  event log written to " << log << "; held(): " << held_info
                << "; the session's copy (version " << server.str(0, 0)
                << ") equals a fresh load: " << server.str(0, 1) << "; hub error: \""
                << hubs[k]->error(h->held_name()) << "\"" << std::endl;
      ADD_FAILURE() << "seed " << seed << ": " << h->options().name << " (" << h->describe()
                    << ") differs from a fresh load after the hub was quiet ("
                    << (later ? "it caught up after more pumps" : "still stale after more pumps")
                    << ", " << h->stats().patches << " patches, " << h->stats().reloads
                    << " reloads):\n"
                    << diff << "  held:  " << held.substr(0, 4000)
                    << "\n  fresh: " << fresh.substr(0, 4000);
    }
    std::cout << "  hub " << k << ": " << changed << " of " << holders[k].size()
              << " values changed, " << hubs[k]->round_trips() << " round trips, "
              << hubs[k]->reconnects() << " reconnects; checked at " << since(t0) << " s"
              << std::endl;
  }
  EXPECT_EQ(diverged, 0) << "of " << kHubs * per_hub << " values (seed " << seed << ")";
}

/*
 * With LISTEN instead of a waiting call: one channel for all of a
 * session's values (listen_changes()).  A change of one of them brings a
 * notification on it (one per worker batch, however many values changed),
 * and wait_changes(0) then returns the values that changed; a change of
 * none brings nothing.  Another session's channel has another name.
 */
TEST(Hub, OneChannelPerSession) {
  Fixture f("ectosync_client_hub_listen");
  pg::Connection session(f.db.conninfo());
  auto authors = f.admin.exec("SELECT author_id FROM posts GROUP BY 1 ORDER BY 1 LIMIT 3");
  ASSERT_EQ(authors.rows(), 3);
  for (int i = 0; i < 3; i++)
    session.exec(
        "SELECT ectosync.hold($1, 'posts', '[\"comments\"]', "
        "pg_catalog.jsonb_build_object('author_id', $2::int), listen => false) IS NULL",
        {"author " + std::to_string(i), authors.str(i, 0)});
  std::string channel = session.exec("SELECT ectosync.listen_changes()").str(0, 0);
  EXPECT_EQ(channel.rfind("ectosync_changes_" + std::to_string(session.backend_pid()) + "_", 0),
            0u);
  pg::Connection other(f.db.conninfo());
  EXPECT_NE(other.exec("SELECT ectosync.listen_changes()").str(0, 0), channel);
  /* the notification to itself: look once */
  auto first = session.wait_notification(5000ms);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->channel, channel);
  EXPECT_EQ(session.exec("SELECT count(*) FROM ectosync.wait_changes(0)").str(0, 0), "0");

  /* a post of author 1 changes: one notification, one row */
  f.admin.exec(
      "UPDATE posts SET title = title || '!' WHERE id = (SELECT min(id) FROM posts WHERE "
      "author_id = $1::int)",
      {authors.str(1, 0)});
  auto n = session.wait_notification(5000ms);
  ASSERT_TRUE(n.has_value()) << "no notification for a change of a held value";
  EXPECT_EQ(n->channel, channel);
  auto rows = session.exec("SELECT name FROM ectosync.wait_changes(0) ORDER BY name");
  ASSERT_EQ(rows.rows(), 1);
  EXPECT_EQ(rows.str(0, 0), "author 1");

  /* a post of another author: no notification (the worker's batch is
   * loaded and notified before wait_for_worker() returns) */
  f.admin.exec(
      "UPDATE posts SET title = title || '!' WHERE id = (SELECT min(id) FROM posts WHERE "
      "author_id > $1::int)",
      {authors.str(2, 0)});
  f.admin.exec("SELECT ectosync.wait_for_worker()");
  EXPECT_FALSE(session.wait_notification(300ms).has_value());
  EXPECT_EQ(session.exec("SELECT count(*) FROM ectosync.wait_changes(0)").str(0, 0), "0");
}

/*
 * A value without an interest entry (its role has taken its share of
 * them) is one the worker cannot notify the session's channel of: with
 * listen_changes(), the session LISTENs to its tables' channels too, and
 * a change of it brings a notification as well, whether the value was
 * held before listen_changes() or after.
 */
TEST(Hub, OneChannelCoversValuesWithoutAnEntry) {
  Fixture f("ectosync_client_hub_listen_entryless");
  f.admin.exec("DROP ROLE IF EXISTS ectosync_hub_share");
  f.admin.exec("CREATE ROLE ectosync_hub_share");
  f.admin.exec("GRANT SELECT ON posts TO ectosync_hub_share");
  f.admin.exec("SELECT ectosync.wait_for_worker()"); /* (the role's marker, logged before) */
  pg::Connection session(f.db.conninfo());
  session.exec("SET ROLE ectosync_hub_share");
  auto hold = [&](const std::string &name, const std::string &id) {
    session.exec(
        "SELECT ectosync.hold($1, 'posts', '[]', pg_catalog.jsonb_build_object('id', $2::int), "
        "listen => false) IS NULL",
        {name, id});
  };
  /* the role's share of the entries, taken by values of no post */
  session.exec(
      "SELECT count(ectosync.hold('filler ' || i, 'posts', '[]', "
      "pg_catalog.jsonb_build_object('id', -i), listen => false)) "
      "FROM generate_series(1, (SELECT greatest(1, m / 100 * p + m % 100 * p / 100) FROM "
      "(SELECT current_setting('ectosync.max_held_values')::int AS m, "
      "current_setting('ectosync.max_role_share')::int AS p) s)) i");
  auto posts = f.admin.exec("SELECT id FROM posts ORDER BY id LIMIT 2");
  ASSERT_EQ(posts.rows(), 2);
  hold("before", posts.str(0, 0));
  session.exec("SELECT ectosync.listen_changes()");
  hold("after", posts.str(1, 0));
  EXPECT_EQ(session
                .exec("SELECT count(*) FROM ectosync.held() WHERE name IN ('before', 'after') "
                      "AND channel IS NULL")
                .str(0, 0),
            "2");
  /* posts' channel, and that of RELOAD markers for every table */
  EXPECT_EQ(session
                .exec("SELECT count(*) FROM pg_catalog.pg_listening_channels() c "
                      "WHERE c IN ('ectosync_0', 'ectosync_' || 'posts'::regclass::oid)")
                .str(0, 0),
            "2");
  /* the notifications to itself: look once */
  ASSERT_TRUE(session.wait_notification(5000ms).has_value());
  session.take_notifications();
  EXPECT_EQ(session.exec("SELECT count(*) FROM ectosync.wait_changes(0)").str(0, 0), "0");

  for (int i = 0; i < 2; i++) {
    std::string name = i == 0 ? "before" : "after";
    f.admin.exec("UPDATE posts SET title = title || '!' WHERE id = $1::int", {posts.str(i, 0)});
    ASSERT_TRUE(session.wait_notification(5000ms).has_value())
        << "no notification for a change of \"" << name << "\", a value without an entry";
    f.admin.exec("SELECT ectosync.wait_for_worker()");
    session.take_notifications();
    auto rows = session.exec("SELECT name FROM ectosync.wait_changes(0) ORDER BY name");
    ASSERT_EQ(rows.rows(), 1);
    EXPECT_EQ(rows.str(0, 0), name);
  }
  session.exec("RESET ROLE");
  f.admin.exec("DROP OWNED BY ectosync_hub_share");
  f.admin.exec("DROP ROLE ectosync_hub_share");
}

/*
 * A value under row level security whose policy reads another table: a
 * change of that table (a membership) reaches the holder like a change
 * of its own rows.  The worker notifies the session's channel, and a
 * wait_changes() already waiting wakes with the reloaded value; a value
 * of the same table held by a role that the policy does not apply to is
 * left alone.
 */
TEST(Hub, MembershipChangeReachesValuesUnderItsPolicy) {
  Fixture f("ectosync_client_hub_policy");
  f.admin.exec("DROP ROLE IF EXISTS ectosync_hub_member");
  f.admin.exec("CREATE ROLE ectosync_hub_member");
  f.admin.exec(
      "CREATE TABLE members (project_id int, login text, PRIMARY KEY (project_id, login));"
      "CREATE TABLE docs (id int PRIMARY KEY, project_id int);"
      "INSERT INTO docs SELECT g, g % 3 FROM generate_series(1, 30) g;"
      "INSERT INTO members VALUES (0, 'ectosync_hub_member');"
      "ALTER TABLE docs ENABLE ROW LEVEL SECURITY;"
      "CREATE POLICY member ON docs USING (project_id IN "
      "(SELECT m.project_id FROM members m WHERE m.login = current_user));"
      "GRANT SELECT ON docs, members TO ectosync_hub_member;"
      "SELECT ectosync.watch('docs');"
      "SELECT ectosync.wait_for_worker()"); /* (the role's marker, logged before the holds) */
  pg::Connection session(f.db.conninfo());
  session.exec("SET ROLE ectosync_hub_member");
  session.exec("SELECT ectosync.hold('mine', 'docs', listen => false) IS NULL");
  std::string channel = session.exec("SELECT ectosync.listen_changes()").str(0, 0);
  pg::Connection owner(f.db.conninfo());
  owner.exec("SELECT ectosync.hold('all', 'docs', listen => false) IS NULL");
  owner.exec("SELECT ectosync.listen_changes()");
  /* the notifications to themselves: look once */
  ASSERT_TRUE(session.wait_notification(5000ms).has_value());
  ASSERT_TRUE(owner.wait_notification(5000ms).has_value());
  session.take_notifications();
  owner.take_notifications();
  EXPECT_EQ(session.exec("SELECT count(*) FROM ectosync.wait_changes(0)").str(0, 0), "0");
  EXPECT_EQ(owner.exec("SELECT count(*) FROM ectosync.wait_changes(0)").str(0, 0), "0");

  /* joins project 1: a notification, and the value reloaded with its docs */
  f.admin.exec("INSERT INTO members VALUES (1, 'ectosync_hub_member')");
  auto n = session.wait_notification(5000ms);
  ASSERT_TRUE(n.has_value()) << "no notification for a membership change";
  EXPECT_EQ(n->channel, channel);
  f.admin.exec("SELECT ectosync.wait_for_worker()");
  session.take_notifications();
  auto rows = session.exec(
      "SELECT name, reloaded IS NOT NULL, "
      "pg_catalog.jsonb_array_length(patch -> 0 -> 'value' -> 'rows') "
      "FROM ectosync.wait_changes(0)");
  ASSERT_EQ(rows.rows(), 1);
  EXPECT_EQ(rows.str(0, 0), "mine");
  EXPECT_EQ(rows.str(0, 1), "t");
  EXPECT_EQ(rows.str(0, 2), "20");
  EXPECT_EQ(owner.exec("SELECT count(*) FROM ectosync.wait_changes(0)").str(0, 0), "0");

  /* leaves project 0 while a wait is under way: it wakes with 10 docs */
  auto [got, in_time] =
      woken_by(session, [&] { f.admin.exec("DELETE FROM members WHERE project_id = 0"); });
  EXPECT_EQ(got, "mine 10");
  EXPECT_TRUE(in_time) << "the wait was not woken by the membership change";
  EXPECT_EQ(session.exec("SELECT ectosync.release('mine')").str(0, 0), "t");
  session.exec("RESET ROLE");
  owner.exec("SELECT ectosync.release('all')");
  f.admin.exec("SELECT ectosync.unwatch('docs')");
  f.admin.exec("DROP TABLE docs, members");
  f.admin.exec("DROP OWNED BY ectosync_hub_member");
  f.admin.exec("DROP ROLE ectosync_hub_member");
}

/*
 * Roles are the cluster's: a GRANT of a role made in one database reaches a
 * value held under a policy that reads memberships in another one, and a
 * wait under way there wakes.
 */
TEST(Hub, RoleChangeInAnotherDatabaseReachesValuesUnderPolicies) {
  Fixture f("ectosync_client_hub_roles");
  testing_support::TestDatabase elsewhere("ectosync_client_hub_roles_elsewhere", false);
  f.admin.exec("DROP ROLE IF EXISTS ectosync_hub_reader");
  f.admin.exec("DROP ROLE IF EXISTS ectosync_hub_team");
  f.admin.exec("CREATE ROLE ectosync_hub_reader; CREATE ROLE ectosync_hub_team");
  f.admin.exec(
      "CREATE TABLE notes (id int PRIMARY KEY, team text);"
      "INSERT INTO notes SELECT g, CASE WHEN g % 3 = 0 THEN 'ectosync_hub_team' ELSE 'x' END "
      "FROM generate_series(1, 30) g;"
      "ALTER TABLE notes ENABLE ROW LEVEL SECURITY;"
      "CREATE POLICY team ON notes USING (team IN (SELECT r.rolname FROM pg_catalog.pg_roles r "
      "WHERE pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')));"
      "GRANT SELECT ON notes TO ectosync_hub_reader;"
      "SELECT ectosync.watch('notes');"
      "SELECT ectosync.wait_for_worker()"); /* (the roles' markers, logged before the hold) */
  pg::Connection session(f.db.conninfo());
  session.exec("SET ROLE ectosync_hub_reader");
  EXPECT_EQ(session
                .exec("SELECT pg_catalog.jsonb_array_length(ectosync.hold('mine', 'notes', "
                      "listen => false) -> 'rows')")
                .str(0, 0),
            "0");
  std::string channel = session.exec("SELECT ectosync.listen_changes()").str(0, 0);
  ASSERT_TRUE(session.wait_notification(5000ms).has_value()); /* (to itself: look once) */
  session.take_notifications();
  EXPECT_EQ(session.exec("SELECT count(*) FROM ectosync.wait_changes(0)").str(0, 0), "0");

  /* joins the team, from the other database, while a wait is under way */
  pg::Connection other(elsewhere.conninfo());
  auto [got, in_time] = woken_by(session, [&] {
    /* a note it may not see: the wait reads it, as the reader, and keeps
     * the locks it took (no lock taken again tells it of the GRANT) */
    f.admin.exec("INSERT INTO notes VALUES (31, 'x')");
    std::this_thread::sleep_for(300ms);
    other.exec("GRANT ectosync_hub_team TO ectosync_hub_reader");
  });
  EXPECT_EQ(got, "mine 10");
  EXPECT_TRUE(in_time) << "the wait was not woken by the role change";
  auto n = session.wait_notification(5000ms);
  ASSERT_TRUE(n.has_value()) << "no notification for a role change";
  EXPECT_EQ(n->channel, channel);

  EXPECT_EQ(session.exec("SELECT ectosync.release('mine')").str(0, 0), "t");
  session.exec("RESET ROLE");
  f.admin.exec("SELECT ectosync.unwatch('notes')");
  f.admin.exec("DROP TABLE notes");
  f.admin.exec("DROP OWNED BY ectosync_hub_reader");
  f.admin.exec("DROP ROLE ectosync_hub_reader, ectosync_hub_team");
}

/*
 * A client that waits by LISTEN (hold(listen => true), then changes() per
 * notification) has no wait that looks again: when changes() publishes a
 * new interest while the worker has a batch in flight, that batch may be
 * matched against the old interest, and loaded without a notification.
 * Until the value has read past every event queued when it published, each
 * changes() sends a notification to the value's own channel.  Here the
 * worker's batch waits in a cast (an advisory lock the test holds) while a
 * new post of the value's author enters it.
 */
TEST(Hub, AListenerIsToldToComeBackWhileItsInterestIsUntrusted) {
  Fixture f("ectosync_client_hub_recall");
  f.admin.exec(R"SQL(
CREATE TYPE gate_t AS ENUM ('shut');
CREATE FUNCTION gate_json(gate_t) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock_shared(4242);
  RETURN pg_catalog.to_json($1::pg_catalog.text);
END $$;
CREATE CAST (gate_t AS json) WITH FUNCTION gate_json(gate_t);
CREATE TABLE gate (id int PRIMARY KEY, g gate_t, n int);
INSERT INTO gate VALUES (1, 'shut', 0);
SELECT ectosync.watch('gate');
SELECT count(*) FROM ectosync.channels('gate');
)SQL");
  std::string author = f.admin.exec("SELECT min(author_id) FROM posts").str(0, 0);
  pg::Connection holder(f.db.conninfo());
  holder.exec(
      "SELECT ectosync.hold('mine', 'posts', '[\"comments\"]', "
      "pg_catalog.jsonb_build_object('author_id', $1::int), listen => true) IS NULL",
      {author});
  std::string channel =
      holder.exec("SELECT c FROM pg_listening_channels() c WHERE c LIKE 'ectosync_held_%'")
          .str(0, 0);
  f.admin.exec("SELECT ectosync.wait_for_worker()");
  holder.exec("SELECT ectosync.changes('mine')");
  while (holder.wait_notification(300ms)) {
  }

  /* the worker's next batch waits in gate's cast */
  pg::Connection locker(f.db.conninfo());
  locker.exec("SELECT pg_advisory_lock(4242)");
  f.admin.exec(
      "INSERT INTO posts (author_id, title, body, published, inserted_at) "
      "VALUES ($1::int, 'new', 'body', true, now())",
      {author});
  f.admin.exec("SELECT ectosync.wait_for_worker()");
  ASSERT_TRUE(holder.wait_notification(5000ms).has_value()) << "no notification of the post";
  f.admin.exec("UPDATE gate SET n = n + 1");
  /* the post enters: a new interest, published while a batch is in flight */
  auto c = holder.exec("SELECT ectosync.changes('mine')::text");
  EXPECT_NE(c.str(0, 0).find("\"new\""), std::string::npos) << c.str(0, 0);
  auto recall = holder.wait_notification(2000ms);
  ASSERT_TRUE(recall.has_value()) << "not told to come back while the interest is untrusted";
  EXPECT_EQ(recall->channel, channel);

  /* once the worker loaded the batch, a call is trusted and says nothing more */
  locker.exec("SELECT pg_advisory_unlock(4242)");
  f.admin.exec("SELECT ectosync.wait_for_worker()");
  holder.exec("SELECT ectosync.changes('mine')");
  while (holder.wait_notification(300ms)) {
  }
  holder.exec("SELECT ectosync.changes('mine')");
  EXPECT_FALSE(holder.wait_notification(500ms).has_value());
}

/*
 * A value nested deeper than the client's JSON parser takes (PostgreSQL
 * takes jsonb much deeper): that value alone keeps the error, and the
 * rest of the reply, which the server has moved on, is applied.
 */
TEST(Hub, AValueTooDeepForTheClientLeavesTheOthers) {
  Fixture f("ectosync_client_hub_deep");
  f.admin.exec("CREATE TABLE deep (id int PRIMARY KEY, doc jsonb)");
  f.admin.exec("INSERT INTO deep VALUES (1, '1')");
  f.admin.exec("SELECT ectosync.watch('deep')");
  ectosync::Hub hub(f.db.conninfo());
  ectosync::Holder deep(table_holder(f, hub, "deep"));
  hub.add(deep);
  auto holders = make_holders(f, hub, 20);
  for (auto &h : holders) hub.add(*h);
  f.admin.exec(
      "BEGIN; UPDATE deep SET doc = (repeat('[', 300) || repeat(']', 300))::jsonb;"
      "UPDATE posts SET title = title || '!'; COMMIT");
  f.admin.exec("SELECT ectosync.wait_for_worker()");
  EXPECT_NO_THROW(hub.pump(5000ms));
  EXPECT_NE(hub.error("deep"), "");
  expect_all_fresh(f, hub, holders);
}

/*
 * A value that a reconnect could not hold again (its table was renamed
 * away meanwhile) is held again by a later pump, once it can be: its error
 * goes, its callback runs, and it equals a fresh load.
 */
TEST(Hub, AValueNotHeldAgainIsTriedAgain) {
  Fixture f("ectosync_client_hub_hold_again");
  f.admin.exec("CREATE TABLE scratch (id int PRIMARY KEY, x text)");
  f.admin.exec("INSERT INTO scratch VALUES (1, 'a')");
  f.admin.exec("SELECT ectosync.watch('scratch')");
  ectosync::Hub hub(f.db.conninfo());
  ectosync::Holder scratch(table_holder(f, hub, "scratch"));
  int called = 0;
  hub.add(scratch, [&](ectosync::Holder &) { called++; });
  f.admin.exec("SELECT pg_terminate_backend($1)", {std::to_string(hub.connection().backend_pid())});
  f.admin.exec("ALTER TABLE scratch RENAME TO scratch_away");
  hub.pump(200ms);
  EXPECT_EQ(hub.reconnects(), 1);
  EXPECT_NE(hub.error("scratch"), "");
  EXPECT_EQ(called, 0);
  f.admin.exec("ALTER TABLE scratch_away RENAME TO scratch");
  f.admin.exec("UPDATE scratch SET x = 'b'");
  hub.pump(200ms);
  EXPECT_EQ(hub.error("scratch"), "");
  EXPECT_EQ(called, 1);
  f.admin.exec("UPDATE scratch SET x = 'c'");
  f.admin.exec("SELECT ectosync.wait_for_worker()");
  while (hub.pump(300ms) > 0) {
  }
  EXPECT_TRUE(scratch.matches_fresh_load());
}

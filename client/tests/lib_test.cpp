/*
 * The libpq plumbing of client/lib against a plain server: parameters,
 * errors, notifications with timeouts, lost connections, transactions, the
 * deterministic blog fixture and the workload.
 */
#include "common.hpp"
#include "metrics.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <thread>

using namespace std::chrono_literals;

TEST(Pg, ParametersAndNulls) {
  pg::Connection conn;
  auto r = conn.exec("SELECT $1::int + 1, $2::text IS NULL, $3::text", {"41", std::nullopt, "é"});
  EXPECT_EQ(r.i64(0, 0), 42);
  EXPECT_TRUE(r.boolean(0, 1));
  EXPECT_EQ(r.str(0, 2), "é");
  auto n = conn.exec("SELECT NULL::int");
  EXPECT_TRUE(n.is_null(0, 0));
  EXPECT_FALSE(n.opt(0, 0).has_value());
}

TEST(Pg, BinaryJsonbParameter) {
  pg::Connection conn;
  auto r = conn.exec_binary_jsonb("SELECT $1::jsonb -> 'a', $2::int", {R"({"a": [1, 2]})", "7"},
                                  {true, false});
  EXPECT_EQ(r.str(0, 0), "[1, 2]");
  EXPECT_EQ(r.i64(0, 1), 7);
}

TEST(Pg, ErrorsCarrySqlstate) {
  pg::Connection conn;
  try {
    conn.exec("SELECT 1 / 0");
    FAIL() << "division by zero did not throw";
  } catch (const pg::Error &e) {
    EXPECT_EQ(e.sqlstate(), "22012");
  }
  /* the connection stays usable */
  EXPECT_EQ(conn.exec("SELECT 2").i64(0, 0), 2);
}

TEST(Pg, NotificationsAndTimeouts) {
  pg::Connection listener, sender;
  listener.exec("LISTEN client_test");
  EXPECT_FALSE(listener.wait_notification(50ms).has_value());
  sender.exec("SELECT pg_notify('client_test', 'one'); SELECT pg_notify('client_test', 'two')");
  auto a = listener.wait_notification(5s);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->channel, "client_test");
  EXPECT_EQ(a->payload, "one");
  EXPECT_EQ(a->sender_pid, sender.backend_pid());
  auto b = listener.wait_notification(5s);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->payload, "two");
  EXPECT_FALSE(listener.wait_notification(50ms).has_value());
  /* notifications of a rolled-back transaction never come */
  sender.exec("BEGIN; SELECT pg_notify('client_test', 'never'); ROLLBACK");
  sender.exec("SELECT pg_notify('client_test', 'three')");
  auto c = listener.wait_notification(5s);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->payload, "three");
}

TEST(Pg, TakeNotificationsGetsABurst) {
  pg::Connection listener, sender;
  listener.exec("LISTEN burst");
  sender.exec("SELECT pg_notify('burst', g::text) FROM generate_series(1, 100) g");
  std::vector<std::string> got;
  auto deadline = pg::Clock::now() + 5s;
  while (got.size() < 100 && pg::Clock::now() < deadline) {
    if (auto n = listener.wait_notification(100ms)) got.push_back(n->payload);
    for (auto &n : listener.take_notifications()) got.push_back(n.payload);
  }
  ASSERT_EQ(got.size(), 100u);
  for (int i = 0; i < 100; i++) EXPECT_EQ(got[i], std::to_string(i + 1));
}

TEST(Pg, LostConnectionAndReconnect) {
  pg::Connection victim, killer;
  int pid = victim.backend_pid();
  killer.exec("SELECT pg_terminate_backend($1::int)", {std::to_string(pid)});
  bool lost = false;
  try {
    /* a terminated backend: the next query or wait fails */
    for (int i = 0; i < 50 && !lost; i++) {
      victim.exec("SELECT 1");
      std::this_thread::sleep_for(20ms);
    }
  } catch (const pg::ConnectionLost &) {
    lost = true;
  } catch (const pg::Error &e) {
    lost = e.sqlstate().rfind("57P", 0) == 0 || e.sqlstate() == "08006";
  }
  EXPECT_TRUE(lost);
  victim.reconnect();
  EXPECT_NE(victim.backend_pid(), pid);
  EXPECT_EQ(victim.exec("SELECT 3").i64(0, 0), 3);
}

TEST(Pg, TransactionRollsBackUnlessCommitted) {
  pg::Connection conn;
  conn.exec("DROP TABLE IF EXISTS client_tx; CREATE TABLE client_tx (x int)");
  {
    pg::Transaction tx(conn);
    conn.exec("INSERT INTO client_tx VALUES (1)");
  }
  {
    pg::Transaction tx(conn);
    conn.exec("INSERT INTO client_tx VALUES (2)");
    tx.commit();
  }
  auto r = conn.exec("SELECT array_agg(x)::text FROM client_tx");
  EXPECT_EQ(r.str(0, 0), "{2}");
  conn.exec("DROP TABLE client_tx");
}

TEST(Pg, JsonStringMember) {
  std::string p = R"({"event": "00ff:12", "table": "public.posts", "op" : "UPDATE"})";
  EXPECT_EQ(pg::json_string_member(p, "event").value(), "00ff:12");
  EXPECT_EQ(pg::json_string_member(p, "table").value(), "public.posts");
  EXPECT_EQ(pg::json_string_member(p, "op").value(), "UPDATE");
  EXPECT_FALSE(pg::json_string_member(p, "seq").has_value());
  EXPECT_EQ(pg::json_string_member(R"({"a":"x\"y"})", "a").value(), "x\"y");
}

static std::string fingerprint(pg::Connection &conn) {
  std::string out;
  for (const auto &t : blog::kTables) {
    auto r = conn.exec(
        "SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, '|' ORDER BY "
        "x::text), '')) FROM " +
        t + " x");
    out += t + "=" + r.str(0, 0) + ";";
  }
  return out;
}

TEST(Blog, SeedIsDeterministic) {
  testing_support::TestDatabase db("ectosync_client_lib", false);
  pg::Connection conn(db.conninfo());
  auto scale = testing_support::small_scale();
  blog::create_schema(conn);
  blog::seed(conn, 42, scale);
  std::string a = fingerprint(conn);
  blog::create_schema(conn);
  blog::seed(conn, 42, scale);
  EXPECT_EQ(a, fingerprint(conn));
  blog::create_schema(conn);
  blog::seed(conn, 43, scale);
  EXPECT_NE(a, fingerprint(conn));
  auto counts = conn.exec(
      "SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM comments), (SELECT count(*) "
      "FROM posts_tags), (SELECT count(*) FROM posts_labels), (SELECT count(*) FROM profiles)");
  EXPECT_EQ(counts.i64(0, 0), scale.posts);
  EXPECT_GT(counts.i64(0, 1), scale.posts);
  EXPECT_GT(counts.i64(0, 2), scale.posts);
  EXPECT_GT(counts.i64(0, 3), 0);
  EXPECT_GT(counts.i64(0, 4), 0);
}

TEST(Blog, WorkloadTouchesEveryTable) {
  testing_support::TestDatabase db("ectosync_client_lib", false);
  pg::Connection conn(db.conninfo());
  blog::create_schema(conn);
  blog::seed(conn, 7, testing_support::small_scale());
  conn.exec(
      "CREATE TABLE touched (tbl text PRIMARY KEY, n bigint NOT NULL DEFAULT 0);"
      "CREATE FUNCTION note_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
      "INSERT INTO touched VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME || ':' || TG_OP, 1) "
      "ON CONFLICT (tbl) DO UPDATE SET n = touched.n + 1; RETURN NULL; END $$;");
  for (const auto &t : blog::kTables)
    conn.exec("CREATE TRIGGER note AFTER INSERT OR UPDATE OR DELETE ON " + t +
              " FOR EACH ROW EXECUTE FUNCTION note_touch()");
  blog::IdSpace ids;
  ids.read(conn);
  pg::Connection wconn("dbname=ectosync_client_lib");
  blog::Workload w(wconn, ids, 99, blog::Mix{});
  for (int i = 0; i < 1500; i++) w.run_transaction();
  EXPECT_EQ(w.stats().transactions + w.stats().aborted, 1500);
  EXPECT_GT(w.stats().rows, 1000);
  auto r = conn.exec("SELECT tbl FROM touched ORDER BY tbl");
  std::set<std::string> seen;
  for (int i = 0; i < r.rows(); i++) seen.insert(r.str(i, 0));
  for (const auto &t : blog::kTables) {
    EXPECT_TRUE(seen.count(t + ":INSERT")) << t << " never inserted";
    EXPECT_TRUE(seen.count(t + ":UPDATE")) << t << " never updated";
    EXPECT_TRUE(seen.count(t + ":DELETE")) << t << " never deleted";
  }
  /* foreign-key moves happened: comments changed post, posts changed author */
  EXPECT_TRUE(seen.count("public.comments:UPDATE"));
}

TEST(Blog, MixParses) {
  auto m = blog::Mix::parse("insert=1,update=0,move=4,delete=2,join=9");
  EXPECT_EQ(m.insert, 1);
  EXPECT_EQ(m.move, 4);
  EXPECT_EQ(m.join, 9);
  EXPECT_THROW(blog::Mix::parse("bogus=1"), std::invalid_argument);
  EXPECT_THROW(blog::Mix::parse("insert=0"), std::invalid_argument);
}

TEST(CommitLog, EarliestCommitCoveringASeq) {
  ectosync::CommitLog log;
  auto t0 = pg::Clock::now();
  log.record_seq(10, t0);
  log.record_seq(8, t0 + 1ms); /* an earlier record already covers seq 8: ignored */
  log.record_seq(25, t0 + 2ms);
  EXPECT_EQ(log.seq_time(1).value(), t0);
  EXPECT_EQ(log.seq_time(10).value(), t0);
  EXPECT_EQ(log.seq_time(11).value(), t0 + 2ms);
  EXPECT_EQ(log.seq_time(25).value(), t0 + 2ms);
  EXPECT_FALSE(log.seq_time(26).has_value());
  log.record_txid(7, t0 + 3ms);
  EXPECT_EQ(log.txid_time(7).value(), t0 + 3ms);
  EXPECT_FALSE(log.txid_time(8).has_value());
  log.clear();
  EXPECT_FALSE(log.seq_time(1).has_value());
}

TEST(Metrics, PercentileAndTable) {
  std::vector<double> v{5, 1, 4, 2, 3};
  EXPECT_DOUBLE_EQ(metrics::percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(metrics::percentile(v, 50), 3);
  EXPECT_DOUBLE_EQ(metrics::percentile(v, 100), 5);
  EXPECT_DOUBLE_EQ(metrics::percentile({}, 50), 0);
  metrics::Table t({"a", "bb"});
  t.add({"xyz", "1"});
  EXPECT_EQ(t.render(), "a    bb\n-------\nxyz   1\n");
  EXPECT_EQ(metrics::ratio(3, 2), "1.50x");
  EXPECT_EQ(metrics::ratio(3, 0), "-");
}

TEST(Metrics, ServerCpuOfThisServer) {
  const char *pgdata = std::getenv("ECTOSYNC_PGDATA");
  ASSERT_TRUE(pgdata) << "run under scripts/with-cluster.sh";
  auto before = metrics::server_cpu_seconds(pgdata);
  ASSERT_TRUE(before.has_value());
  pg::Connection conn;
  conn.exec("SELECT count(*) FROM generate_series(1, 3000000)");
  auto after = metrics::server_cpu_seconds(pgdata);
  ASSERT_TRUE(after.has_value());
  EXPECT_GT(*after, *before);
  EXPECT_FALSE(metrics::server_cpu_seconds("/nonexistent").has_value());
}

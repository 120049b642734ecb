/*
 * 10,000 changes from 4 writer connections: a listener sees every event id
 * exactly once, in increasing seq order, and every event resolves: a value
 * over the changed table syncs through all of them and ends equal to a
 * fresh load.
 *
 * Under pressure (ECTOSYNC_EXPECT_PRESSURE=1: a tiny queue and event log),
 * transactions that do not fit become RELOAD markers and events leave the
 * log before they are synced: then the ids are still distinct and strictly
 * increasing, each payload is an UPDATE or a RELOAD of posts, sync() says
 * ZE001 (the listener loads again) rather than anything else, and the value
 * still ends equal to a fresh load.  Both must have happened.
 */
#include "common.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

using namespace std::chrono_literals;

TEST(Listener, EveryEventOnceInOrderAndResolvable) {
  const int kWriters = 4;
  const int kChanges = testing_support::long_run() ? 40000 : 10000;
  const bool pressure = testing_support::expect_pressure();
  /* Under pressure the queue (64 kB) must overflow while the worker
   * gathers a pass (ectosync.batch_delay, 100 ms): about 1,400 events.  At
   * 5 changes per transaction the writers made about that many, and a
   * fast run sometimes fit; at 25, commits cost less per change and they
   * make several times as many. */
  const int kPerTxn = pressure ? 25 : 5;
  testing_support::TestDatabase db("ectosync_client_listener");
  const std::string conninfo = db.conninfo();
  pg::Connection admin(conninfo);
  blog::create_schema(admin);
  blog::Scale scale = testing_support::small_scale();
  scale.posts = 400;
  blog::seed(admin, 1, scale);
  admin.exec("SELECT ectosync.watch('posts')");

  /* the listener: subscribes and holds a value of all posts */
  pg::Connection listener(conninfo);
  auto channels = listener.exec("SELECT ectosync.subscribe('posts') ORDER BY 1 DESC");
  ASSERT_EQ(channels.rows(), 2);
  auto relid = admin.exec("SELECT 'posts'::regclass::oid::text").str(0, 0);
  EXPECT_EQ(channels.str(0, 0), "ectosync_" + relid);
  EXPECT_EQ(channels.str(1, 0), "ectosync_0"); /* the database's: markers of every table */
  auto loaded = listener.exec(
      "SELECT v::text, (v->>'seq')::bigint, v->>'epoch' FROM ectosync.load('posts') v");
  std::string value = loaded.str(0, 0);
  const uint64_t start_seq = static_cast<uint64_t>(loaded.i64(0, 1));
  const std::string epoch = loaded.str(0, 2);

  std::atomic<bool> failed{false};
  std::atomic<int> writers_done{0};
  std::vector<std::thread> writers;
  testing_support::JoinAll join_writers{writers};
  for (int w = 0; w < kWriters; w++) {
    writers.emplace_back([&, w] {
      try {
        pg::Connection conn(conninfo);
        for (int i = 0; i < kChanges / kWriters / kPerTxn; i++) {
          std::string sql = "BEGIN;";
          for (int k = 0; k < kPerTxn; k++) {
            int post = 1 + (w * 97 + i * kPerTxn + k) % scale.posts;
            sql += "UPDATE posts SET title = 'w" + std::to_string(w) + " i" + std::to_string(i) +
                   " k" + std::to_string(k) + "' WHERE id = " + std::to_string(post) + ";";
          }
          conn.exec(sql + "COMMIT");
        }
      } catch (const std::exception &e) {
        ADD_FAILURE() << "writer " << w << ": " << e.what();
        failed = true;
      }
      writers_done++;
    });
  }

  std::vector<uint64_t> seqs;
  std::set<std::string> ids;
  int duplicates = 0, out_of_order = 0, wrong_table = 0, wrong_epoch = 0, syncs = 0;
  int reload_markers = 0, ze001 = 0;
  std::vector<std::string> pending;
  auto sync_pending = [&] {
    /* every payload must resolve: sync them, chained, in arrival order */
    while (!pending.empty()) {
      size_t n = std::min<size_t>(pending.size(), 32);
      std::string expr = "$1::jsonb";
      std::vector<pg::Param> params{value};
      for (size_t k = 0; k < n; k++) {
        params.push_back(pending[k]);
        expr = "ectosync.sync(" + expr + ", $" + std::to_string(k + 2) + ")";
      }
      try {
        auto r = listener.exec("SELECT (" + expr + ")::text", params);
        value = r.str(0, 0);
        syncs += static_cast<int>(n);
        pending.erase(pending.begin(), pending.begin() + static_cast<long>(n));
      } catch (const pg::Error &e) {
        if (!pressure || e.sqlstate() != ectosync::kReloadState) throw;
        /* we listen already: a new load reflects every event received */
        ze001++;
        value = listener.exec("SELECT ectosync.load('posts')::text").str(0, 0);
        pending.clear();
      }
    }
  };
  /* bounded: 90 s in all, and at most 15 s of silence after the writers finished */
  auto deadline = pg::Clock::now() + 90s;
  auto last_heard = pg::Clock::now();
  bool drained = false; /* pressure: the writers are done and the worker handled everything */
  while (static_cast<int>(seqs.size()) < kChanges && pg::Clock::now() < deadline && !failed) {
    auto n = listener.wait_notification(500ms);
    if (!n) {
      if (pressure && writers_done == kWriters) {
        if (drained) break; /* everything notified was received */
        drained = admin.exec("SELECT ectosync.wait_for_worker(30000)").boolean(0, 0);
        continue;
      }
      if (writers_done == kWriters && pg::Clock::now() - last_heard > 15s) {
        ADD_FAILURE() << "no notification for 15 s after the writers finished";
        break;
      }
      continue;
    }
    last_heard = pg::Clock::now();
    std::vector<pg::Notification> batch{*n};
    for (auto &m : listener.take_notifications()) batch.push_back(m);
    for (const auto &m : batch) {
      auto event = pg::json_string_member(m.payload, "event");
      auto table = pg::json_string_member(m.payload, "table");
      auto op = pg::json_string_member(m.payload, "op");
      if (!(event && table && op)) {
        ADD_FAILURE() << "payload: " << m.payload;
        failed = true;
        continue;
      }
      bool every_table = m.channel == "ectosync_0";
      if (!every_table) {
        EXPECT_EQ(m.channel, "ectosync_" + relid);
      }
      if (*table != (every_table ? "*" : "public.posts")) wrong_table++;
      if (pressure && *op == "RELOAD")
        reload_markers++;
      else
        EXPECT_EQ(*op, "UPDATE") << m.payload;
      auto colon = event->find(':');
      if (colon == std::string::npos) {
        ADD_FAILURE() << "event id: " << *event;
        failed = true;
        continue;
      }
      if (event->substr(0, colon) != epoch) wrong_epoch++;
      uint64_t seq = std::stoull(event->substr(colon + 1));
      if (!ids.insert(*event).second) duplicates++;
      if (!seqs.empty() && seq <= seqs.back()) out_of_order++;
      if (seq <= start_seq) out_of_order++;
      seqs.push_back(seq);
      pending.push_back(m.payload);
    }
    sync_pending();
  }
  for (auto &t : writers) t.join();
  ASSERT_FALSE(failed);
  /* nothing more may come: wait a little for stragglers (more would be an error) */
  while (auto extra = listener.wait_notification(300ms)) {
    seqs.push_back(0);
    ADD_FAILURE() << "an extra notification: " << extra->payload;
    if (seqs.size() > static_cast<size_t>(kChanges) + 20) break;
  }
  sync_pending();
  if (pressure) {
    /* dropped events became RELOAD markers: fewer ids, but each once */
    std::cout << "listener: " << seqs.size() << " notifications, " << reload_markers
              << " RELOAD markers, " << ze001 << " ZE001 reloads" << std::endl;
    EXPECT_EQ(ids.size(), seqs.size()) << "distinct event ids";
    EXPECT_GT(reload_markers, 0) << "the queue never overflowed";
    EXPECT_GT(testing_support::pressure(admin).events_dropped, 0) << "no event was dropped";
    EXPECT_GT(ze001, 0) << "sync() never asked for a reload";
  } else {
    EXPECT_EQ(static_cast<int>(seqs.size()), kChanges) << "events seen";
    EXPECT_EQ(static_cast<int>(ids.size()), kChanges) << "distinct event ids";
    EXPECT_EQ(syncs, kChanges);
  }
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(out_of_order, 0);
  EXPECT_EQ(wrong_table, 0);
  EXPECT_EQ(wrong_epoch, 0);
  auto same =
      listener.exec("SELECT ($1::jsonb - 'seq') = (ectosync.load('posts') - 'seq')", {value});
  EXPECT_TRUE(same.boolean(0, 0)) << "the synced value differs from a fresh load";
  auto seq = listener.exec("SELECT ($1::jsonb->>'seq')::bigint", {value}).i64(0, 0);
  EXPECT_EQ(static_cast<uint64_t>(seq), seqs.empty() ? start_seq : seqs.back());
}

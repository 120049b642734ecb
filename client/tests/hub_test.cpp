/*
 * Many held values over one connection (client/lib/hub.hpp): hundreds of
 * per-author values and a few shared windows on one session, random
 * writers, one wait for all of them; every value ends equal to a fresh
 * load, and only the values a change concerns are called back.  A hub
 * whose backend is killed reconnects and holds every value again.
 */
#include "common.hpp"
#include "hub.hpp"

#include <gtest/gtest.h>

#include <iostream>
#include <map>

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

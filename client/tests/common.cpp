#include "common.hpp"

#include <cstdlib>
#include <random>

namespace testing_support {

static bool g_long = false;

std::string fresh_database(const std::string &name, bool with_extension) {
  pg::Connection admin;
  admin.exec("DROP DATABASE IF EXISTS " + admin.quote_ident(name) + " WITH (FORCE)");
  admin.exec("CREATE DATABASE " + admin.quote_ident(name));
  std::string conninfo = "dbname=" + name;
  if (!with_extension) return conninfo;
  pg::Connection conn(conninfo);
  conn.exec("SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS ecto_sync");
  return conninfo;
}

TestDatabase::TestDatabase(std::string name, bool with_extension)
    : name_(std::move(name)), conninfo_(fresh_database(name_, with_extension)) {}

TestDatabase::~TestDatabase() {
  try {
    pg::Connection admin;
    admin.exec("DROP DATABASE IF EXISTS " + admin.quote_ident(name_) + " WITH (FORCE)");
  } catch (const std::exception &) {
    /* the server is gone (a failed restart): nothing left to drop */
  }
}

uint64_t seed_from_env() {
  if (const char *s = std::getenv("ECTOSYNC_SEED")) return std::strtoull(s, nullptr, 10);
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32 | rd()) % 1000000000ULL;
}

int64_t env_int(const char *name, int64_t fallback) {
  const char *s = std::getenv(name);
  return (s && *s) ? std::strtoll(s, nullptr, 10) : fallback;
}

bool long_run() {
  const char *s = std::getenv("ECTOSYNC_LONG");
  return g_long || (s && std::string(s) == "1");
}

void set_long_run(bool on) {
  g_long = on;
}

bool expect_pressure() {
  const char *s = std::getenv("ECTOSYNC_EXPECT_PRESSURE");
  return s && std::string(s) == "1";
}

Pressure pressure(pg::Connection &conn) {
  auto r =
      conn.exec("SELECT reload_markers, events_dropped, cache_evictions FROM ectosync.stats()");
  return Pressure{r.i64(0, 0), r.i64(0, 1), r.i64(0, 2)};
}

blog::Scale small_scale() {
  blog::Scale s;
  s.persons = 40;
  s.posts = 150;
  s.tags = 12;
  s.labels = 6;
  s.comments_per_post = 2;
  s.tags_per_post = 2;
  s.audit_entries = 80;
  return s;
}

int worker_pid(pg::Connection &conn) {
  auto r = conn.exec(
      "SELECT pid FROM pg_stat_activity WHERE (backend_type = 'ecto_sync worker' OR "
      "application_name = 'ecto_sync worker') AND datname = "
      "current_database() ORDER BY backend_start DESC LIMIT 1");
  return r.rows() ? static_cast<int>(r.i64(0, 0)) : 0;
}

uint64_t last_seq(pg::Connection &conn) {
  auto r = conn.exec("SELECT last_seq FROM ectosync.stats()");
  return static_cast<uint64_t>(r.i64(0, 0));
}

}  // namespace testing_support

#include "common.hpp"

#include <gtest/gtest.h>

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

std::vector<AssocInfo> associations(pg::Connection &conn, const std::string &table) {
  auto r = conn.exec(
      "SELECT name, kind, target::text, array_to_json(owner_columns)::text FROM "
      "ectosync.associations($1::regclass) ORDER BY name",
      {table});
  std::vector<AssocInfo> out;
  for (int i = 0; i < r.rows(); i++) {
    AssocInfo a{r.str(i, 0), r.str(i, 1), r.str(i, 2), {}};
    auto cols = conn.exec("SELECT json_array_elements_text($1::json)", {r.str(i, 3)});
    for (int k = 0; k < cols.rows(); k++) a.owner_columns.push_back(cols.str(k, 0));
    out.push_back(a);
  }
  return out;
}

/* A random nested assocs spec (JSON text) rooted at table, up to depth. */
std::string random_shape(pg::Connection &conn, std::mt19937_64 &rng, const std::string &table,
                         int depth) {
  std::string out = "[";
  bool first = true;
  if (depth > 0) {
    auto assocs = associations(conn, table);
    /* at the top, usually at least one association */
    size_t forced =
        (depth >= 3 && !assocs.empty() && rng() % 100 < 85) ? rng() % assocs.size() : assocs.size();
    for (size_t i = 0; i < assocs.size(); i++) {
      const auto &a = assocs[i];
      if (i != forced && rng() % 100 >= 40) continue;
      if (!first) out += ", ";
      first = false;
      std::string nested =
          (depth > 1 && rng() % 100 < 60) ? random_shape(conn, rng, a.target, depth - 1) : "[]";
      if (nested == "[]")
        out += "\"" + a.name + "\"";
      else
        out += "{\"" + a.name + "\": " + nested + "}";
    }
  }
  return out + "]";
}

/* Maybe a filter on one of the root's single-column foreign keys. */
std::string random_filter(pg::Connection &conn, std::mt19937_64 &rng, const std::string &table) {
  if (rng() % 100 >= 40) return "";
  std::vector<std::string> cols;
  for (const auto &a : associations(conn, table))
    if (a.kind == "belongs_to" && a.owner_columns.size() == 1) cols.push_back(a.owner_columns[0]);
  if (cols.empty()) return "";
  std::string col = cols[rng() % cols.size()];
  auto qcol = conn.quote_ident(col);
  auto r = conn.exec("SELECT DISTINCT to_jsonb(" + qcol + ")::text FROM " + table + " WHERE " +
                     qcol + " IS NOT NULL ORDER BY 1");
  if (r.rows() == 0) return "";
  return "{\"" + col + "\": " + r.str(static_cast<int>(rng() % r.rows()), 0) + "}";
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

namespace testing_support {

void pressure_writer(const std::string &conninfo,
                     const std::function<std::string(int limit)> &statement,
                     const std::function<bool(int i)> &keep_going, std::atomic<bool> &failed,
                     const std::string &label) {
  try {
    pg::Connection conn(conninfo);
    for (int i = 0; keep_going(i) && !failed; i++) {
      try {
        conn.exec(statement(i % 4 == 3 ? 60 : 40));
      } catch (const pg::ConnectionLost &) {
        throw;
      } catch (const pg::Error &e) {
        /* many rows in random order against the writers: deadlocks happen */
        if (e.sqlstate().compare(0, 2, "40") != 0) throw;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  } catch (const std::exception &e) {
    ADD_FAILURE() << label << ": " << e.what();
    failed = true;
  }
}

/* Rows in which a held value and a fresh load differ (up to 10), for messages. */
std::string difference(ectosync::Holder &h) {
  auto diff = h.connection().exec(
      "WITH a AS (SELECT jsonb_array_elements($1::jsonb->'rows') r), b AS (SELECT "
      "jsonb_array_elements(ectosync.load($2::regclass, $3::jsonb, $4::jsonb)->'rows') r) "
      "SELECT 'held only: ' || r::text FROM (SELECT r FROM a EXCEPT ALL SELECT r FROM b) x "
      "UNION ALL SELECT 'fresh only: ' || r::text FROM (SELECT r FROM b EXCEPT ALL SELECT r "
      "FROM a) y LIMIT 10",
      {h.value(), h.options().table, h.options().assocs,
       h.options().filter.empty() ? pg::Param() : pg::Param(h.options().filter)});
  std::string lines;
  for (int i = 0; i < diff.rows(); i++) lines += "    " + diff.str(i, 0).substr(0, 600) + "\n";
  return lines;
}

}  // namespace testing_support

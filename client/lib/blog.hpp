/*
 * blog.hpp: the blog domain the tests, the demo and the benchmarks use.
 *
 *   persons        id bigserial pk, name, email
 *   profiles       id pk, person_id unique -> persons (cascade), bio
 *   posts          id pk, author_id -> persons ON DELETE SET NULL, title, body,
 *                  published, inserted_at
 *   comments       id pk, post_id -> posts ON DELETE CASCADE, author_id -> persons, body
 *   tags           id pk, name unique
 *   posts_tags     (post_id, tag_id) pk, both -> ON DELETE CASCADE
 *   labels         id uuid pk, name
 *   posts_labels   (post_id, label_id) pk, both -> ON DELETE CASCADE
 *   audit.entries  entry_no pk, post_id -> posts ON DELETE SET NULL, action
 *
 * Seeding is deterministic from a seed (setseed() + one session).  The
 * random write workload (Workload) touches every table, moves rows between
 * parents (foreign-key updates), and deletes, from its own RNG.
 */
#pragma once

#include "pg.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace blog {

/* Every table of the domain, as "schema.name". */
extern const std::vector<std::string> kTables;

/*
 * The alternative the demo and the benchmarks measure ecto_sync against,
 * EctoWatch's way: a plpgsql row trigger on each table that pg_notify()s the
 * row as JSON (with the writer's txid) on channel ectowatch_<relid>.
 */
void install_notify_trigger(pg::Connection &conn, const std::vector<std::string> &tables);

struct Scale {
  int persons = 300;
  int posts = 3000;
  int tags = 40;
  int labels = 16;
  int comments_per_post = 3; /* on average */
  int tags_per_post = 3;     /* on average */
  int audit_entries = 1000;
};

/* Drop and create the domain's tables (and schema audit). */
void create_schema(pg::Connection &conn);
void drop_schema(pg::Connection &conn);
/* Fill the tables; the same seed and scale give the same rows. */
void seed(pg::Connection &conn, uint64_t seed, const Scale &scale);

/* A deterministic uuid text from an RNG. */
std::string random_uuid(std::mt19937_64 &rng);

/* Relative weights of the kinds of change a Workload makes. */
struct Mix {
  int insert = 3;
  int update = 5;
  int move = 2; /* foreign-key updates: rows move between parents */
  int del = 2;
  int join = 3; /* posts_tags / posts_labels inserts and deletes */
  /* "insert=3,update=5,move=2,delete=2,join=3"; unknown names throw */
  static Mix parse(const std::string &text);
  std::string describe() const;
};

/* Highest ids handed out so far, shared by the writers of one run. */
struct IdSpace {
  std::atomic<int64_t> persons{0}, posts{0}, comments{0}, tags{0}, profiles{0}, audit{0};
  std::vector<std::string> labels; /* fixed at seeding; never deleted */
  void read(pg::Connection &conn); /* from the tables' current maxima */
};

struct WriteStats {
  int64_t transactions = 0; /* committed */
  int64_t statements = 0;   /* executed in committed transactions */
  int64_t rows = 0;         /* rows the statements affected (cascades not counted) */
  int64_t aborted = 0;      /* transactions rolled back on a conflict */
  void add(const WriteStats &o) {
    transactions += o.transactions;
    statements += o.statements;
    rows += o.rows;
    aborted += o.aborted;
  }
};

/*
 * One writer: random changes over every table.  run_transaction() makes one
 * transaction of 1..max_statements statements and commits it; conflicts
 * (foreign-key races, deadlocks, unique violations) roll it back and count
 * as aborted.  after_commit (SQL run in the COMMIT's round trip, e.g. to read
 * the last event seq) may be empty; its first result field is returned.
 */
class Workload {
 public:
  Workload(pg::Connection &conn, IdSpace &ids, uint64_t seed, Mix mix, int max_statements = 3);
  /*
   * Returns after_commit's value ("" when none or on abort).  before_commit
   * (e.g. "SELECT txid_current()") runs as the transaction's last statement;
   * its value goes to *before_value.
   */
  std::string run_transaction(const std::string &after_commit = "",
                              const std::string &before_commit = "",
                              std::string *before_value = nullptr);
  const WriteStats &stats() const { return stats_; }

 private:
  int64_t pick(const std::atomic<int64_t> &max_id);
  int64_t one_statement(std::string &sql_text_out);
  pg::Connection &conn_;
  IdSpace &ids_;
  std::mt19937_64 rng_;
  Mix mix_;
  int max_statements_;
  WriteStats stats_;
};

}  // namespace blog

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
 *   ectosync_bench interests [--values 0,1000,10000,30000] [--events N]
 *       the worker's CPU time per event as held values (each user's own
 *       posts) grow, against none held.
 *
 * Connects through PG*; run it via scripts/bench.sh (a throwaway cluster).
 */
#include "benches.hpp"
#include "flags.hpp"

#include <iostream>
#include <string>

using namespace bench;

int main(int argc, char **argv) {
  if (argc < 2) {
    std::cerr << "usage: ectosync_bench write|write-setup|write-sql|sync|latency|interests|all "
                 "[--flag value "
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
    if (what == "interests") return bench_interests(f);
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

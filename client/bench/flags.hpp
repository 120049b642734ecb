/*
 * What the benchmarks share: the command line's --flag value pairs, the
 * helpers that read them, a fresh database with the extension, and a
 * pgbench run (the write and the sync benchmarks drive pgbench).
 */
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace bench {

/* --flag value pairs, by flag name without the dashes */
using Flags = std::map<std::string, std::string>;

Flags flags(int argc, char **argv, int first);
std::vector<int> int_list(const std::string &s);
std::string env_or(const char *name, const char *fallback);
/* Drops and creates the database with ecto_sync installed; its conninfo. */
std::string fresh_db(const std::string &name);

struct PgbenchResult {
  double tps = 0, latency_ms = 0;
  int64_t transactions = 0;
};

PgbenchResult run_pgbench(const std::string &db, const std::string &script, int clients,
                          int seconds);

}  // namespace bench

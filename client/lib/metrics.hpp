/*
 * metrics.hpp: figures the demo and the benchmarks print.
 */
#pragma once

#include "pg.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace metrics {

/*
 * CPU seconds (user + system) used so far by the server whose data
 * directory is pgdata: the postmaster, its live children, and the children
 * it has reaped (cutime/cstime).  nullopt when /proc or the pid file cannot
 * be read (e.g. a remote server).
 */
std::optional<double> server_cpu_seconds(const std::string &pgdata);

/* CPU seconds (user + system) of one process, nullopt when unreadable. */
std::optional<double> process_cpu_seconds(int pid);

/* Tuples read from user tables so far: sum of seq_tup_read + idx_tup_fetch. */
int64_t table_rows_read(pg::Connection &conn);

/* One row of ectosync.stats(), column name -> value (numbers only). */
std::map<std::string, double> ectosync_stats(pg::Connection &conn);

/* Percentile (0..100) of unsorted samples; 0 when empty. */
double percentile(std::vector<double> samples, double p);

/* A fixed-width text table. */
class Table {
 public:
  /* The first `left` columns are left-aligned, the others right-aligned. */
  explicit Table(std::vector<std::string> header, size_t left = 1)
      : header_(std::move(header)), left_(left) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
  size_t left_;
};

std::string fmt(double v, int decimals = 1);
std::string ratio(double a, double b); /* "a/b" as "3.2x", "-" when b == 0 */

}  // namespace metrics

#include "metrics.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace metrics {

namespace {
struct ProcStat {
  int pid = 0, ppid = 0;
  double self = 0, children = 0; /* seconds */
};

std::optional<ProcStat> read_stat(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  /* comm may hold spaces: fields start after the last ')' */
  auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> f;
  std::string tok;
  while (rest >> tok) f.push_back(tok);
  /* f[0] = state (field 3); utime is field 14 -> f[11] */
  if (f.size() < 15) return std::nullopt;
  double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  ProcStat s;
  s.pid = pid;
  s.ppid = std::stoi(f[1]);
  s.self = (std::stod(f[11]) + std::stod(f[12])) / tick;
  s.children = (std::stod(f[13]) + std::stod(f[14])) / tick;
  return s;
}
}  // namespace

std::optional<double> server_cpu_seconds(const std::string &pgdata) {
  if (pgdata.empty()) return std::nullopt;
  std::ifstream pidfile(pgdata + "/postmaster.pid");
  int postmaster = 0;
  if (!(pidfile >> postmaster) || postmaster <= 0) return std::nullopt;
  auto root = read_stat(postmaster);
  if (!root) return std::nullopt;
  double total = root->self + root->children;
  DIR *dir = opendir("/proc");
  if (!dir) return std::nullopt;
  while (dirent *e = readdir(dir)) {
    char *end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (!end || *end || pid <= 0) continue;
    auto st = read_stat(static_cast<int>(pid));
    if (st && st->ppid == postmaster) total += st->self + st->children;
  }
  closedir(dir);
  return total;
}

std::optional<double> process_cpu_seconds(int pid) {
  auto st = read_stat(pid);
  if (!st) return std::nullopt;
  return st->self;
}

int64_t table_rows_read(pg::Connection &conn) {
  conn.exec("SELECT pg_stat_clear_snapshot()");
  auto r = conn.exec(
      "SELECT coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0)::bigint "
      "FROM pg_stat_user_tables WHERE schemaname NOT IN ('ectosync')");
  return r.i64(0, 0);
}

std::map<std::string, double> ectosync_stats(pg::Connection &conn) {
  std::map<std::string, double> out;
  auto r = conn.exec("SELECT * FROM ectosync.stats()");
  if (r.rows() < 1) return out;
  for (int c = 0; c < r.cols(); c++) {
    if (r.is_null(0, c)) continue;
    std::string v = r.str(0, c);
    char *end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (end && *end == '\0' && !v.empty()) out[PQfname(r.raw(), c)] = d;
  }
  return out;
}

double percentile(std::vector<double> s, double p) {
  if (s.empty()) return 0;
  std::sort(s.begin(), s.end());
  double rank = p / 100.0 * static_cast<double>(s.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(rank));
  size_t hi = std::min(lo + 1, s.size() - 1);
  double frac = rank - static_cast<double>(lo);
  return s[lo] + (s[hi] - s[lo]) * frac;
}

std::string Table::render() const {
  std::vector<size_t> w(header_.size(), 0);
  auto widen = [&](const std::vector<std::string> &row) {
    for (size_t i = 0; i < row.size() && i < w.size(); i++) w[i] = std::max(w[i], row[i].size());
  };
  widen(header_);
  for (const auto &r : rows_) widen(r);
  std::string out;
  auto line = [&](const std::vector<std::string> &row) {
    for (size_t i = 0; i < w.size(); i++) {
      std::string cell = i < row.size() ? row[i] : "";
      std::string pad(w[i] - cell.size(), ' ');
      if (i > 0) out += "  ";
      if (i < left_)
        out += cell + (i + 1 < w.size() ? pad : "");
      else
        out += pad + cell;
    }
    out += "\n";
  };
  line(header_);
  size_t total = 0;
  for (auto x : w) total += x + 2;
  out += std::string(total > 2 ? total - 2 : 0, '-') + "\n";
  for (const auto &r : rows_) line(r);
  return out;
}

std::string fmt(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string ratio(double a, double b) {
  if (b == 0) return "-";
  return fmt(a / b, 2) + "x";
}

}  // namespace metrics

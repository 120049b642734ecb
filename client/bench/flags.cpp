#include "flags.hpp"

#include "pg.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace bench {

Flags flags(int argc, char **argv, int first) {
  Flags out;
  for (int i = first; i < argc; i++) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || i + 1 >= argc)
      throw std::invalid_argument("expected --flag value, got " + a);
    out[a.substr(2)] = argv[++i];
  }
  return out;
}

std::vector<int> int_list(const std::string &s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(std::stoi(item));
  return out;
}

std::string env_or(const char *name, const char *fallback) {
  const char *v = std::getenv(name);
  return v ? v : fallback;
}

std::string fresh_db(const std::string &name) {
  pg::Connection admin;
  admin.exec("DROP DATABASE IF EXISTS " + admin.quote_ident(name) + " WITH (FORCE)");
  admin.exec("CREATE DATABASE " + admin.quote_ident(name));
  pg::Connection conn("dbname=" + name);
  conn.exec("SET client_min_messages = warning; CREATE EXTENSION ecto_sync");
  return "dbname=" + name;
}

PgbenchResult run_pgbench(const std::string &db, const std::string &script, int clients,
                          int seconds) {
  std::string bin = "pgbench";
  if (const char *b = std::getenv("ECTOSYNC_PGBIN")) bin = std::string(b) + "/pgbench";
  std::string cmd = bin + " -n -f " + script + " -c " + std::to_string(clients) + " -j " +
                    std::to_string(std::min(clients, 2)) + " -T " + std::to_string(seconds) + " " +
                    db + " 2>&1";
  FILE *p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + cmd);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int rc = pclose(p);
  PgbenchResult r;
  std::smatch m;
  if (std::regex_search(out, m, std::regex(R"(tps = ([0-9.]+))"))) r.tps = std::stod(m[1]);
  if (std::regex_search(out, m, std::regex(R"(latency average = ([0-9.]+) ms)")))
    r.latency_ms = std::stod(m[1]);
  if (std::regex_search(out, m, std::regex(R"(number of transactions actually processed: (\d+))")))
    r.transactions = std::stoll(m[1]);
  if (rc != 0 || r.tps <= 0) throw std::runtime_error("pgbench failed (" + cmd + "):\n" + out);
  return r;
}

}  // namespace bench

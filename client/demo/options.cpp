/*
 * options.cpp: the demo's flags, parsed and checked.
 */
#include "options.hpp"

#include <cstdlib>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace demo {

void usage() {
  std::cout << "usage: ectosync_demo [flags]\n"
               "  --holders N      holders (default 20): 1..200 each on its own connection, or\n"
               "                   1..100000 over --connections\n"
               "  --connections C  spread the holders over C connections (hub.hpp: one\n"
               "                   wait_changes() for all of a connection's values); default\n"
               "                   one connection per holder\n"
               "  --writers M      writer connections (default 4)\n"
               "  --duration S     seconds of writes per mode (default 10)\n"
               "  --rate R         transactions/s over all writers, 0 = unpaced (default 200)\n"
               "  --mix SPEC       insert=3,update=5,move=2,delete=2,join=3 (relative weights)\n"
               "  --seed N         data and workload seed (default 1)\n"
               "  --posts N        posts in the seeded domain (default 2000)\n"
               "  --modes LIST     ectosync,reload,notify (default all three)\n"
               "  --drain-timeout S  give up waiting for holders to catch up (default 120)\n"
               "  --shapes LIST    holder shapes, round robin (default 0,1,2,3,4,5,6):\n"
               "                   0 all posts with tags, 1 one author's posts with comments and\n"
               "                   their authors, 2 the tag list, 3 one post's comments with post\n"
               "                   and author, 4 one author's posts with labels, tags, author,\n"
               "                   5 persons with profiles, 6 one post's audit entries;\n"
               "                   lists with a $query: 7 the 20 newest published posts with\n"
               "                   tags by name, 8 one author's posts by title, 50 a page,\n"
               "                   9 the 20 newest posts, each with its 3 newest comments\n";
}

namespace {

std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

Options parse(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    } else if (a == "--holders") {
      o.holders = std::stoi(next());
    } else if (a == "--connections") {
      o.connections = std::stoi(next());
    } else if (a == "--writers") {
      o.writers = std::stoi(next());
    } else if (a == "--duration") {
      o.duration_s = std::stod(next());
    } else if (a == "--rate") {
      o.rate = std::stod(next());
    } else if (a == "--mix") {
      o.mix = blog::Mix::parse(next());
    } else if (a == "--seed") {
      o.seed = std::stoull(next());
    } else if (a == "--posts") {
      o.posts = std::stoi(next());
    } else if (a == "--modes") {
      o.modes = split(next(), ',');
    } else if (a == "--drain-timeout") {
      o.drain_timeout_s = std::stod(next());
    } else if (a == "--shapes") {
      o.shapes.clear();
      for (const auto &item : split(next(), ',')) {
        int k = std::stoi(item);
        if (k < 0 || k > 9) throw std::invalid_argument("--shapes: 0..9");
        o.shapes.push_back(k);
      }
      if (o.shapes.empty()) throw std::invalid_argument("--shapes: none given");
    } else {
      throw std::invalid_argument("unknown flag " + a + " (--help)");
    }
  }
  if (o.connections < 0 || o.connections > 200)
    throw std::invalid_argument("--connections: 1..200");
  if (o.holders < 1 || o.holders > (o.connections ? 100000 : 200))
    throw std::invalid_argument(o.connections ? "--holders: 1..100000" : "--holders: 1..200");
  if (o.writers < 1 || o.writers > 64) throw std::invalid_argument("--writers: 1..64");
  if (o.duration_s <= 0 || o.duration_s > 3600)
    throw std::invalid_argument("--duration: (0, 3600]");
  for (const auto &m : o.modes)
    if (m != "ectosync" && m != "reload" && m != "notify")
      throw std::invalid_argument("--modes: unknown mode " + m);
  return o;
}

}  // namespace demo

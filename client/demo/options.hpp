/*
 * options.hpp: the demo's flags (ectosync_demo --help).
 */
#pragma once

#include "blog.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace demo {

struct Options {
  int holders = 20;
  int connections = 0; /* holders share this many connections (hubs); 0: one each */
  int writers = 4;
  double duration_s = 10;
  double rate = 200; /* transactions per second, all writers together; 0: as fast as possible */
  blog::Mix mix;
  uint64_t seed = 1;
  int posts = 2000;
  std::vector<std::string> modes = {"ectosync", "reload", "notify"};
  double drain_timeout_s = 120;
  std::vector<int> shapes = {0, 1, 2, 3, 4, 5, 6}; /* round robin over these */
};

void usage();
/* The flags, checked; throws std::invalid_argument naming the bad one. */
Options parse(int argc, char **argv);

}  // namespace demo

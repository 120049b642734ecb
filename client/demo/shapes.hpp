/*
 * shapes.hpp: the holders' shapes, a realistic mix of what an application
 * shows (ectosync_demo --shapes).
 */
#pragma once

#include "options.hpp"
#include "pg.hpp"

#include <string>
#include <vector>

namespace demo {

struct Shape {
  std::string label, table, assocs, filter;
};

/* The holders' shapes, round robin over o.shapes. */
std::vector<Shape> make_shapes(pg::Connection &conn, const Options &o, int persons);

}  // namespace demo

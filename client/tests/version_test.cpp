/* The extension installs and reports its version. */
#include "common.hpp"

#include <gtest/gtest.h>

TEST(Extension, Version) {
  pg::Connection conn(testing_support::fresh_database("ectosync_client_version"));
  auto r = conn.exec(
      "SELECT ectosync.version(), extversion FROM pg_extension WHERE extname = "
      "'ecto_sync'");
  ASSERT_EQ(r.rows(), 1);
  EXPECT_EQ(r.str(0, 0), "0.1.0");
  EXPECT_EQ(r.str(0, 1), "0.1.0");
}

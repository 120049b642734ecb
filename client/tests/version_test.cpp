/* The extension installs and reports its version. */
#include "common.hpp"

#include <gtest/gtest.h>

TEST(Extension, Version) {
  testing_support::TestDatabase db("ectosync_client_version");
  pg::Connection conn(db.conninfo());
  auto r = conn.exec(
      "SELECT ectosync.version(), extversion FROM pg_extension WHERE extname = "
      "'ecto_sync'");
  ASSERT_EQ(r.rows(), 1);
  EXPECT_EQ(r.str(0, 0), "0.2.0");
  EXPECT_EQ(r.str(0, 1), "0.2.0");
}

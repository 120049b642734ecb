/* GoogleTest main: also accepts --long (more changes, longer runs). */
#include "common.hpp"

#include <gtest/gtest.h>

#include <cstring>

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; i++)
    if (std::strcmp(argv[i], "--long") == 0) testing_support::set_long_run(true);
  return RUN_ALL_TESTS();
}

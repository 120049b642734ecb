/*
 * The benchmarks of ectosync_bench, one file each (main.cpp dispatches on
 * the first argument; see its header for what each prints).  Each returns
 * the process's exit status.
 */
#pragma once

#include "flags.hpp"

namespace bench {

int bench_write(const Flags &f);     /* write_bench.cpp */
int write_setup(const Flags &f);     /* write_bench.cpp */
int write_sql(const Flags &f);       /* write_bench.cpp */
int bench_sync(const Flags &f);      /* sync_bench.cpp */
int bench_latency(const Flags &f);   /* latency_bench.cpp */
int bench_interests(const Flags &f); /* interest_bench.cpp */

}  // namespace bench

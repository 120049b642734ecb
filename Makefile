# ecto_sync: PGXS build of the extension from the C++17 sources in src/ and
# its folders (DESIGN.md, Files); includes name their folder: "pg/pg_boundary.hpp".
#
#   make                 build ecto_sync.so
#   make install         install it (DESTDIR is honoured; scripts/cluster.sh uses it)
#   make installcheck    pg_regress (sql_tests/*.sql) and pg_isolation_regress
#                        (sql_tests/*.spec) against the server in PGHOST/PGPORT;
#                        expected output for both lives in expected/
#   make format          clang-format the sources in place

EXTENSION = ecto_sync
MODULE_big = ecto_sync
DATA = sql/ecto_sync--0.1.0.sql sql/ecto_sync--0.1.0--0.2.0.sql
SRCS = $(sort $(wildcard src/*.cpp src/*/*.cpp))
OBJS = $(SRCS:.cpp=.o)

REGRESS = $(sort $(basename $(notdir $(wildcard sql_tests/*.sql))))
ISOLATION = $(sort $(basename $(notdir $(wildcard sql_tests/*.spec))))
# pg_regress wants <inputdir>/sql and <inputdir>/expected, pg_isolation_regress
# <inputdir>/specs: build/ holds links that map our two folders onto that.
REGRESS_OPTS = --inputdir=build/test --outputdir=build/regress
ISOLATION_OPTS = --inputdir=build/test --outputdir=build/isolation
REGRESS_PREP = build/test
EXTRA_CLEAN = build

# No JIT bitcode: it would compile the C++ sources with clang as C++98.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PostgreSQL's own headers are not -Wextra clean in C++ (unused parameters,
# the 'register' keyword): include them as system headers so that the
# warnings stay on, as errors, for our code only.
override CPPFLAGS := -Isrc -isystem $(includedir_server) $(CPPFLAGS)
override CXXFLAGS := $(CXXFLAGS) -std=c++17 -Wextra -Werror
SHLIB_LINK += -lstdc++

build/test:
	mkdir -p build/test build/regress build/isolation
	ln -sfn ../../sql_tests build/test/sql
	ln -sfn ../../sql_tests build/test/specs
	ln -sfn ../../expected build/test/expected

$(OBJS): $(wildcard src/*.hpp src/*/*.hpp)

format:
	clang-format -i src/*.cpp src/*.hpp src/*/*.cpp src/*/*.hpp client/*/*.cpp client/*/*.hpp

.PHONY: format

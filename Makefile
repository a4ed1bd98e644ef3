# ivm: PGXS build.  `make`, `make install`, `make installcheck`; `make format` (clang-format,
# .clang-format) and `make format-check` (what test/run checks).
EXTENSION = ivm
MODULE_big = ivm
DATA = $(wildcard ivm--*.sql)

SRCS = $(wildcard src/plan/*.cpp src/pg/*.cpp src/analyze/*.cpp src/catalog/*.cpp \
                  src/capture/*.cpp src/apply/*.cpp src/api/*.cpp)
OBJS = $(SRCS:.cpp=.o)

# Regression tests: every sql/*.sql, in name order; isolation specs likewise.
REGRESS = $(sort $(notdir $(basename $(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=ivm
ISOLATION = $(sort $(notdir $(basename $(wildcard test/isolation/specs/*.spec))))
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=output_iso --load-extension=ivm

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)

# PostgreSQL's headers are C, not warning-clean C++: -isystem keeps -Werror
# for our code only (a directory given with both -I and -isystem is a system one).
PG_CXXFLAGS = -isystem $(shell $(PG_CONFIG) --includedir-server) -std=c++17 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
              -fno-omit-frame-pointer -MMD -MP
PG_CPPFLAGS = -Isrc
SHLIB_LINK = -lstdc++

# No LLVM bitcode: JIT inlining of C++ maintenance code buys nothing.
override with_llvm = no

include $(PGXS)


-include $(OBJS:.o=.d)

FORMAT_SOURCES = $(sort $(wildcard src/*/*.cpp src/*/*.hpp test/unit/*.cpp))
.PHONY: format format-check
format:
	clang-format -i $(FORMAT_SOURCES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_SOURCES)

EXTRA_CLEAN = $(OBJS:.o=.d) output_iso results regression.diffs regression.out

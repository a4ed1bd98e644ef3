// analyze.hpp: from query text to an operator plan.
//
// The query is parsed, analyzed and rewritten by PostgreSQL itself (so plain
// views in FROM arrive expanded); this module walks the resulting Query tree,
// refuses every construct it cannot maintain exactly (FEATURE_NOT_SUPPORTED,
// naming the construct), and deparses expressions under a pinned search_path
// into the plan's SQL text.
#pragma once
#include "plan/ir.hpp"

#include <functional>
#include <string>
#include <vector>

namespace ivm::analyze {

struct Analysis {
  plan::ViewPlan plan;                // name/oid/state/keylock are filled in by the caller
  std::string definition;             // the query, normalized: every name schema-qualified
  std::string querytree;              // the same as a parse tree (nodeToString): relations and
                                      // columns by oid, so it deparses to current names after renames
  std::vector<std::uint32_t> inputs;  // relations read (tables and ivm views)
};

// MaterializeFn: compiles a subquery of FROM into an internal ivm view and
// returns that view table's oid.  Provided by the catalog layer.
using MaterializeFn = std::function<std::uint32_t(const std::string& definition)>;

// IsViewFn: whether a relation is an ivm view table.
using IsViewFn = std::function<bool(std::uint32_t relid)>;

// Uniqueness of a column in a relation: none known; Unique, at most one row
// per value (NULLs aside); Strict, unique and never NULL.
enum class Uniqueness { None, Unique, Strict };

// UniqueFn: what ivm view relid guarantees about its column `column` (quoted).
using UniqueFn = std::function<Uniqueness(std::uint32_t relid, const std::string& column)>;

Analysis analyze_query(const std::string& query, const MaterializeFn& materialize, const IsViewFn& is_view,
                       const UniqueFn& unique_on);

// unique_index_on: a unique index (immediate, valid, not partial, on the
// column alone, of the column type's default btree family) proving that
// table relid has at most one row per value of column attno, or 0.  The
// primary key is preferred; with `primary`, only the primary key (which also
// keeps the column NOT NULL) qualifies.  Views relying on such an index prove
// it again after every drop (catalog::recheck_unique_keys).
std::uint32_t unique_index_on(std::uint32_t relid, int attno, bool primary);

// querytree_of: the parse tree of a stored definition (Analysis::querytree),
// analyzed afresh: a restored database has the same names with other oids.
std::string querytree_of(const std::string& definition);

// strip_query: drops surrounding white space and trailing semicolons.
std::string strip_query(const std::string& query);

}  // namespace ivm::analyze

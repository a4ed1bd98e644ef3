// ir.hpp: the operator plan of one incrementally maintained view.
//
// A view compiles to   [Aggregate] <- Filter(where) <- JoinTree(leaves)
// where every expression is SQL text already deparsed by PostgreSQL against
// the leaves' aliases (l1, l2, ...), so this layer never parses SQL: it only
// composes it.  Nested aggregates and subqueries in FROM are compiled into
// internal views first, so a plan's leaves are always stored relations:
// ordinary tables or other ivm views.
#pragma once
#include "plan/pure.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace ivm::plan {

// Leaf: one occurrence of a relation in FROM.
struct Leaf {
  std::string alias;                 // l1, l2, ...: the name expressions use
  std::string relation;              // schema-qualified, quoted
  std::uint32_t relid = 0;           // pg_class oid
  bool is_view = false;              // another ivm view (its changes arrive as bags)
  std::vector<std::string> columns;  // quoted names of the columns the view reads
  std::string key;                   // join-key class expression over alias, or ""
};

enum class JoinKind { Leaf, Inner, Left, Right, Full };

// JoinNode: a node of the FROM tree; children index into ViewPlan::joins.
struct JoinNode {
  JoinKind kind = JoinKind::Leaf;
  int leaf = -1;  // for Leaf nodes
  int left = -1;
  int right = -1;
  std::string on;  // join condition ("" = true)
};

// AggKind: how an aggregate's state is maintained.
//  - CountStar/Count/Sum/Avg/BoolAnd/BoolOr are algebraic: deltas are added.
//  - Min/Max keep the extreme and how many rows hold it (extreme_counts):
//    deleting some of its copies only lowers the count; the group is
//    recomputed when the last copy goes (or the count is not known yet).
//  - Recompute (COUNT(DISTINCT), float sums, ...) recomputes affected groups.
enum class AggKind { CountStar, Count, Sum, Avg, Min, Max, BoolAnd, BoolOr, Recompute };

struct Aggregate {
  AggKind kind = AggKind::CountStar;
  std::string arg;            // argument expression over the leaves ("" for count(*))
  std::string filter;         // FILTER (WHERE ...) expression, or ""
  std::string state_type;     // type of the accumulator column a<i>
  std::string call;           // for Recompute/Min/Max: function name, e.g. pg_catalog.count
  bool distinct = false;      // aggregate over DISTINCT values (Recompute only)
  bool interval_avg = false;  // AVG(interval) divides by a float8 count
};

struct ViewPlan {
  std::string name;       // view table, schema-qualified and quoted
  std::uint32_t oid = 0;  // view table oid
  std::string state;      // aggregate state table ("" for SPJ views)
  std::string keylock;    // key lock table ("" when the view has one leaf)
  std::string key_type;   // type of keylock.k
  bool outer = false;     // has outer joins: maintained by affected-key recompute
  std::vector<Leaf> leaves;
  std::vector<JoinNode> joins;
  int root = -1;
  std::string where;  // "" = no WHERE

  std::vector<std::string> columns;  // output column names, quoted, in order
  std::vector<std::string> types;    // output column types
  int locator = -1;                  // output column used to find view rows

  // SPJ views: one expression per output column, over the leaves.
  std::vector<std::string> outputs;
  // SPJ views with outer joins: an output column holding the join key of a
  // leaf no join null-extends, or -1.  The view's rows of an affected key are
  // then found in the view itself instead of being recomputed from the
  // inputs' old state.
  int view_key = -1;
  // With a view key: every leaf has at most one row per key value (a unique
  // index on its key column, or an ivm view with one row per key), so the
  // view has at most one row per key.
  bool unique_key = false;
  // Everything unique_key needs but the uniqueness of the inputs (the shape,
  // the key operators and collations): a unique index created later (or
  // again) proves it then (catalog::recheck_unique_keys).  Plans stored
  // before format 5 say so when their key was proven.
  bool key_provable = false;

  // Aggregate views (also SELECT DISTINCT, as GROUP BY every column).
  bool aggregate = false;
  std::vector<std::string> groups;       // grouping expressions over the leaves
  std::vector<std::string> group_types;  // their types
  std::vector<int> group_columns;        // output column holding each group
  std::vector<Aggregate> aggs;
  std::vector<std::string> finals;  // output expressions over f.g<i> / f.a<i>
  std::string having;               // over f.g<i> / f.a<i>, or ""
  // MIN/MAX state counts the rows holding the extreme (x<i>, with the
  // transient dc<i>); plans stored before format 3 have no such columns until
  // the extension update adds them.
  bool extreme_counts = true;

  bool global() const { return aggregate && groups.empty(); }
  bool needs_recompute() const;
};

std::string serialize(const ViewPlan& plan);
ViewPlan deserialize(const std::string& text);

}  // namespace ivm::plan

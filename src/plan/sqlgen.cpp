// sqlgen.cpp: renders the delta rules of sqlgen.hpp as SQL text.
#include "plan/sqlgen.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace ivm::plan {

namespace {

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

std::vector<std::string> prefixed(const std::string& prefix, const std::vector<std::string>& v) {
  std::vector<std::string> out;
  for (const auto& s : v) out.push_back(prefix + s);
  return out;
}

std::vector<std::string> numbered(const std::string& stem, std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(stem + std::to_string(i));
  return out;
}

// "a, b, " or "" : a column list that can precede further items.
std::string lead(const std::vector<std::string>& cols) {
  return cols.empty() ? std::string() : join(cols, ", ") + ", ";
}

// match: l IS NOT DISTINCT FROM r per column, written so that an index on the
// left-hand columns can still be used for the non-NULL case.
std::string match(const std::vector<std::string>& l, const std::vector<std::string>& r) {
  if (l.empty()) return "true";
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < l.size(); ++i)
    parts.push_back("(" + l[i] + " = " + r[i] + " OR (" + l[i] + " IS NULL AND " + r[i] + " IS NULL))");
  return join(parts, " AND ");
}

// Probing an index NULL-safely in two arms: rows whose probe values are all
// set use plain equalities (one index scan each); the rare rest use match().
// One OR-ed condition for both would make every probe a bitmap scan.
std::string all_set(const std::vector<std::string>& r) {
  std::vector<std::string> parts;
  for (const auto& c : r) parts.push_back(c + " IS NOT NULL");
  return parts.empty() ? std::string("true") : "(" + join(parts, " AND ") + ")";
}

std::string equal(const std::vector<std::string>& l, const std::vector<std::string>& r) {
  if (l.empty()) return "true";
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < l.size(); ++i) parts.push_back(l[i] + " = " + r[i]);
  return join(parts, " AND ");
}

// probe_arms: `tmpl` with the text ":ON" replaced by the probe condition and
// ":ARM" by the arm's condition on the probe values, twice, UNION ALL.
// Without nulls (the caller knows no probe value is NULL), only the first arm.
std::string probe_arms(const std::string& tmpl, const std::vector<std::string>& l, const std::vector<std::string>& r,
                       bool nulls = true) {
  auto fill = [&](const std::string& on, const std::string& arm) {
    std::string out = tmpl;
    for (auto [key, val] : {std::pair<std::string, std::string>{":ON", on}, {":ARM", arm}})
      for (std::size_t at = out.find(key); at != std::string::npos; at = out.find(key, at + val.size()))
        out.replace(at, key.size(), val);
    return out;
  };
  if (!nulls) return fill(equal(l, r), all_set(r));
  return fill(equal(l, r), all_set(r)) + " UNION ALL " + fill(match(l, r), "NOT " + all_set(r));
}

std::string group_by(const std::vector<std::string>& cols) {
  return cols.empty() ? std::string() : " GROUP BY " + join(cols, ", ");
}

using SourceFn = std::function<std::string(int leaf)>;

std::string from_tree(const ViewPlan& p, int node, const SourceFn& source) {
  const JoinNode& j = p.joins[static_cast<std::size_t>(node)];
  if (j.kind == JoinKind::Leaf) return source(j.leaf) + " " + p.leaves[static_cast<std::size_t>(j.leaf)].alias;
  const char* kw = j.kind == JoinKind::Inner   ? " JOIN "
                   : j.kind == JoinKind::Left  ? " LEFT JOIN "
                   : j.kind == JoinKind::Right ? " RIGHT JOIN "
                                               : " FULL JOIN ";
  return "(" + from_tree(p, j.left, source) + kw + from_tree(p, j.right, source) + " ON " +
         (j.on.empty() ? std::string("true") : j.on) + ")";
}

std::string where_and(const ViewPlan& p, const std::string& extra = "") {
  std::vector<std::string> conds;
  if (!p.where.empty()) conds.push_back("(" + p.where + ")");
  if (!extra.empty()) conds.push_back(extra);
  return conds.empty() ? std::string() : " WHERE " + join(conds, " AND ");
}

std::string select_list(const std::vector<std::string>& exprs) {
  std::vector<std::string> items;
  for (std::size_t i = 0; i < exprs.size(); ++i) items.push_back(exprs[i] + " AS c" + std::to_string(i));
  return lead(items);
}

const Leaf& leaf_of(const ViewPlan& p, int i) { return p.leaves[static_cast<std::size_t>(i)]; }

std::string cols_of(const Leaf& l) { return join(l.columns, ", "); }

// Current contents of a leaf, restricted to the affected keys.
// The keys drive the join in their sorted order, so that consecutive probes
// of an index (and of a table stored in key order) touch neighbouring pages.
std::string restricted(const Leaf& l) {
  return "(SELECT " + join(prefixed(l.alias + ".", l.columns), ", ") + " FROM ivm_keys JOIN " + l.relation + " " +
         l.alias + " ON " + l.key + " = ivm_keys.k)";
}

// The leaf before the change, restricted to the affected keys, as a plain
// bag (outer joins need real rows, not multiplicities): now minus inserted
// plus deleted.
std::string restricted_old(const ViewPlan& p, int i, const DeltaSource& d) {
  const Leaf& l = leaf_of(p, i);
  std::string delta = "(" + sql_leaf_delta(p, i, d) + ") " + l.alias;
  std::string cols = cols_of(l);
  return "((SELECT " + join(prefixed(l.alias + ".", l.columns), ", ") + " FROM ivm_keys JOIN " + l.relation + " " +
         l.alias + " ON " + l.key + " = ivm_keys.k EXCEPT ALL SELECT " + cols + " FROM " + delta +
         ", generate_series(1, " + l.alias + ".__m) WHERE " + l.alias + ".__m > 0) UNION ALL SELECT " + cols +
         " FROM " + delta + ", generate_series(1, -" + l.alias + ".__m) WHERE " + l.alias + ".__m < 0 AND " + l.key +
         " IN (SELECT k FROM ivm_keys))";
}

std::string body_delta_linear(const ViewPlan& p, const Changes& c, const std::vector<std::string>& exprs) {
  std::vector<std::string> terms;
  for (const auto& change : c) {
    const int i = change.first;
    const DeltaSource& d = change.second;
    std::vector<std::string> mults;
    SourceFn source = [&](int j) -> std::string {
      const Leaf& l = leaf_of(p, j);
      auto cj = c.find(j);
      if (j == i) {
        mults.push_back(l.alias + ".__m");
        return "(" + sql_leaf_delta(p, j, d) + ")";
      }
      if (cj != c.end() && j > i) {
        // Leaves after the changed one are seen in their old state.
        mults.push_back(l.alias + ".__m");
        std::string cols = cols_of(l);
        return "(SELECT " + lead(l.columns) + "1::int8 AS __m FROM " + l.relation + " UNION ALL SELECT " +
               lead(l.columns) + "-__m FROM (" + sql_leaf_delta(p, j, cj->second) + ") ivm_old)";
      }
      return l.relation;
    };
    std::string from = from_tree(p, p.root, source);
    std::string m = mults.size() == 1 ? mults[0] : "(" + join(mults, " * ") + ")";
    terms.push_back("SELECT " + select_list(exprs) + m + "::int8 AS __m FROM " + from + where_and(p));
  }
  return join(terms, " UNION ALL ");
}

// Leaves that must be restricted to the affected keys for the join to yield
// exactly the rows of those keys.  Every join condition equates the key class
// across its sides, so the non-null-extended leaves of an output row share one
// key value, and each row keeps a row of some leaf found by descending into
// both sides of inner and full joins and the preserved side of left and right
// joins; restricting those leaves restricts the output.  The other leaves are
// read whole and joined by key (index probes from the restricted side): a
// restriction there would only make the planner match each probed row against
// the key set again.  Leaves under a full join are all restricted, since a
// full join cannot be driven by probes from either side.
std::set<int> anchored_leaves(const ViewPlan& p) {
  std::set<int> out;
  std::function<void(int, bool)> walk = [&](int n, bool all) {
    const JoinNode& j = p.joins[static_cast<std::size_t>(n)];
    switch (j.kind) {
      case JoinKind::Leaf: out.insert(j.leaf); return;
      case JoinKind::Left:
        walk(j.left, all);
        if (all) walk(j.right, all);
        return;
      case JoinKind::Right:
        walk(j.right, all);
        if (all) walk(j.left, all);
        return;
      case JoinKind::Full:
        walk(j.left, true);
        walk(j.right, true);
        return;
      case JoinKind::Inner:
        walk(j.left, all);
        walk(j.right, all);
        return;
    }
  };
  walk(p.root, false);
  return out;
}

// Leaves whose rows with a NULL key can reach the view: a NULL key matches
// nothing, so such a row survives only where its side is preserved with the
// others empty (the left of LEFT, the right of RIGHT, both sides of FULL);
// an inner join drops it.
std::set<int> null_key_survivors(const ViewPlan& p) {
  std::function<std::set<int>(int)> walk = [&](int n) -> std::set<int> {
    const JoinNode& j = p.joins[static_cast<std::size_t>(n)];
    switch (j.kind) {
      case JoinKind::Leaf: return {j.leaf};
      case JoinKind::Left: return walk(j.left);
      case JoinKind::Right: return walk(j.right);
      case JoinKind::Full: {
        std::set<int> l = walk(j.left), r = walk(j.right);
        l.insert(r.begin(), r.end());
        return l;
      }
      case JoinKind::Inner: return {};
    }
    return {};
  };
  return walk(p.root);
}

// changed_rows: the rows of leaf i that changed, to read their keys from.  A
// bag arrives consolidated already (a view's apply returns only rows that
// differ; an apply consumes a delta table net per row) and is read as it is:
// sorting its wide rows to drop the few that cancel in the leaf's columns
// would only spare recomputing keys whose rows turn out unchanged.  A table's
// inserted and deleted rows are consolidated first, so that an UPDATE of
// columns the view does not read affects no key.
std::string changed_rows(const ViewPlan& p, int i, const DeltaSource& d) {
  if (!d.bag.empty()) return d.bag;
  return "(" + sql_leaf_delta(p, i, d) + ")";
}

// The parts of an outer-join view's delta for changes c: the affected keys
// (a WITH clause defining ivm_keys), the rows of those keys after the change
// (multiplicity +1), and the rows whose key is NULL, which never match and
// pass through the joins alone (signed).
struct OuterDelta {
  std::string keys;
  std::string now;
  std::vector<std::string> alone;
};

OuterDelta outer_delta(const ViewPlan& p, const Changes& c, const std::vector<std::string>& exprs) {
  OuterDelta out;
  std::vector<std::string> keys;
  for (const auto& [i, d] : c) {
    const Leaf& l = leaf_of(p, i);
    keys.push_back("SELECT " + l.key + " AS k FROM " + changed_rows(p, i, d) + " " + l.alias);
  }
  out.keys = "WITH ivm_keys AS (SELECT DISTINCT k FROM (" + join(keys, " UNION ALL ") +
             ") ivm_k WHERE k IS NOT NULL ORDER BY k) ";
  std::set<int> anchored = anchored_leaves(p);
  SourceFn now = [&](int j) { return anchored.count(j) ? restricted(leaf_of(p, j)) : leaf_of(p, j).relation; };
  out.now = "SELECT " + select_list(exprs) + "1::int8 AS __m FROM " + from_tree(p, p.root, now) + where_and(p);
  std::set<int> survivors = null_key_survivors(p);
  for (const auto& change : c) {
    const int i = change.first;
    if (!survivors.count(i)) continue;  // its NULL-key rows never reach the view
    const DeltaSource& d = change.second;
    const Leaf& li = leaf_of(p, i);
    SourceFn alone = [&](int j) -> std::string {
      const Leaf& l = leaf_of(p, j);
      if (j == i)
        return "(SELECT * FROM (" + sql_leaf_delta(p, j, d) + ") " + l.alias + " WHERE " + l.key + " IS NULL)";
      return "(SELECT " + cols_of(l) + " FROM " + l.relation + " WHERE false)";
    };
    out.alone.push_back("SELECT " + select_list(exprs) + li.alias + ".__m FROM " + from_tree(p, p.root, alone) +
                        where_and(p));
  }
  return out;
}

// body_delta_outer: the rows of the affected keys after the change, minus the
// same rows before it (recomputed from the inputs' old state), plus the
// NULL-key rows.
std::string body_delta_outer(const ViewPlan& p, const Changes& c, const std::vector<std::string>& exprs) {
  OuterDelta od = outer_delta(p, c, exprs);
  std::set<int> anchored = anchored_leaves(p);
  SourceFn before = [&](int j) {
    auto cj = c.find(j);
    if (cj != c.end()) return restricted_old(p, j, cj->second);
    return anchored.count(j) ? restricted(leaf_of(p, j)) : leaf_of(p, j).relation;
  };
  std::string out = od.keys + od.now + " UNION ALL SELECT " + select_list(exprs) + "-1::int8 AS __m FROM " +
                    from_tree(p, p.root, before) + where_and(p);
  for (const auto& a : od.alone) out += " UNION ALL " + a;
  return out;
}

// Column layout of the body rows an aggregate view reads: the grouping
// expressions first, then each aggregate's argument and filter.
struct AggLayout {
  std::vector<std::string> exprs;
  std::vector<std::string> groups;  // c<i> of the groups
  std::vector<std::string> arg;     // per aggregate: c<i> or ""
  std::vector<std::string> filter;  // per aggregate: c<i> or ""
};

AggLayout agg_layout(const ViewPlan& p) {
  AggLayout a;
  auto add = [&](const std::string& e) {
    a.exprs.push_back(e);
    return "c" + std::to_string(a.exprs.size() - 1);
  };
  for (const auto& g : p.groups) a.groups.push_back(add(g));
  for (const auto& ag : p.aggs) {
    a.arg.push_back(ag.arg.empty() ? std::string() : add(ag.arg));
    a.filter.push_back(ag.filter.empty() ? std::string() : add(ag.filter));
  }
  return a;
}

std::string filter_clause(const std::string& prefix, const std::string& f, const std::string& extra = "") {
  std::vector<std::string> conds;
  if (!f.empty()) conds.push_back(prefix + f);
  if (!extra.empty()) conds.push_back(extra);
  return conds.empty() ? std::string() : " FILTER (WHERE " + join(conds, " AND ") + ")";
}

std::vector<std::string> state_groups(const ViewPlan& p) {
  return p.global() ? std::vector<std::string>{"__k"} : numbered("g", p.groups.size());
}

bool has_n(AggKind k) {
  return k == AggKind::Sum || k == AggKind::Avg || k == AggKind::BoolAnd || k == AggKind::BoolOr;
}

// Aggregate call recomputing accumulator a<i> from body rows b.
std::string recompute_call(const Aggregate& ag, const AggLayout& lay, std::size_t i) {
  std::string arg = lay.arg[i].empty() ? "*" : (ag.distinct ? "DISTINCT " : "") + ("b." + lay.arg[i]);
  return ag.call + "(" + arg + ")" + filter_clause("b.", lay.filter[i]);
}

// Finalized aggregate i read from state row s.
std::string finalize(const Aggregate& ag, std::size_t i) {
  std::string a = "s.a" + std::to_string(i), n = "s.n" + std::to_string(i);
  switch (ag.kind) {
    case AggKind::Sum: return "CASE WHEN " + n + " > 0 THEN " + a + " END";
    case AggKind::Avg:
      if (ag.interval_avg) return "CASE WHEN " + n + " > 0 THEN " + a + " / " + n + "::float8 END";
      return "CASE WHEN " + n + " > 0 THEN " + a + "::numeric / " + n + "::numeric END";
    case AggKind::BoolAnd: return "CASE WHEN " + n + " > 0 THEN " + a + " = " + n + " END";
    case AggKind::BoolOr: return "CASE WHEN " + n + " > 0 THEN " + a + " > 0 END";
    default: return a;
  }
}

// f: the finalized state rows (g<i>, a<i>, __cnt) that output expressions read.
// finalized_from: the same over state rows read from `source` (aliased s).
std::vector<std::string> finalized_items(const ViewPlan& p) {
  std::vector<std::string> items = prefixed("s.", state_groups(p));
  for (std::size_t i = 0; i < p.aggs.size(); ++i) items.push_back(finalize(p.aggs[i], i) + " AS a" + std::to_string(i));
  items.push_back("s.__cnt");
  return items;
}

std::string finalized_from(const ViewPlan& p, const std::string& source) {
  return "SELECT " + join(finalized_items(p), ", ") + " FROM " + source;
}

std::string finalized(const ViewPlan& p, const std::string& restrict_join) {
  return finalized_from(p, p.state + " s" + restrict_join);
}

// output_condition: whether finalized group f has an output row.
std::string output_condition(const ViewPlan& p) {
  std::vector<std::string> conds;
  if (!p.global()) conds.push_back("f.__cnt > 0");
  if (!p.having.empty()) conds.push_back("(" + p.having + ")");
  return conds.empty() ? std::string("true") : "(" + join(conds, " AND ") + ")";
}

// by_tid: rows of table alias t whose ctid some row of CTE `rows` (column
// __tid) names, among the rows satisfying cond.  The ctid list is also given
// as an array, so that the table is read by a TID scan of exactly those rows
// whatever the planner guesses about the join (a misestimate would otherwise
// hash-join a whole table).
std::string by_tid(const std::string& t, const std::string& rows, const std::string& cond) {
  return t + ".ctid = " + rows + ".__tid AND " + t + ".ctid = ANY (ARRAY(SELECT " + rows + ".__tid FROM " + rows +
         " WHERE " + cond + ")) AND " + cond;
}

std::string output_filter(const ViewPlan& p) {
  std::vector<std::string> conds;
  if (!p.global()) conds.push_back("f.__cnt > 0");
  if (!p.having.empty()) conds.push_back("(" + p.having + ")");
  return conds.empty() ? std::string() : " WHERE " + join(conds, " AND ");
}

}  // namespace

std::string sql_leaf_delta(const ViewPlan& p, int leaf, const DeltaSource& d) {
  const Leaf& l = leaf_of(p, leaf);
  std::string cols = lead(l.columns);
  std::string gb = group_by(l.columns);
  // Consolidate: an UPDATE that does not touch a column the view reads, or a
  // view row whose change lies in columns this view does not read, cancels
  // out here.  A view over views without aggregates consolidates its own
  // change at the end anyway, and another view's change holds no row twice:
  // it is read as it is, without sorting its wide rows.  An aggregate must not
  // see the rows that cancel: it would touch (and lock) their groups.  A bag
  // consolidated on the leaf's very columns already is what this would give.
  if (!d.bag.empty() && !p.aggregate && l.is_view) return "SELECT " + cols + "__m FROM " + d.bag;
  if (!d.bag.empty() && !d.consolidated_on.empty() &&
      std::set<std::string>(l.columns.begin(), l.columns.end()) ==
          std::set<std::string>(d.consolidated_on.begin(), d.consolidated_on.end()))
    return "SELECT " + cols + "__m FROM " + d.bag;
  if (!d.bag.empty()) return "SELECT " + cols + "sum(__m)::int8 AS __m FROM " + d.bag + gb + " HAVING sum(__m) <> 0";
  if (!d.inserted.empty() && !d.deleted.empty())
    return "SELECT " + cols + "sum(__m)::int8 AS __m FROM (SELECT " + cols + "1 AS __m FROM " + d.inserted +
           " UNION ALL SELECT " + cols + "-1 FROM " + d.deleted + ") ivm_u" + gb + " HAVING sum(__m) <> 0";
  if (!d.inserted.empty()) return "SELECT " + cols + "1::int8 AS __m FROM " + d.inserted;
  return "SELECT " + cols + "-1::int8 AS __m FROM " + d.deleted;
}

std::string sql_body_delta(const ViewPlan& p, const Changes& c, const std::vector<std::string>& exprs) {
  return p.outer ? body_delta_outer(p, c, exprs) : body_delta_linear(p, c, exprs);
}

std::string sql_body_rows(const ViewPlan& p, const std::vector<std::string>& exprs) {
  SourceFn current = [&](int j) { return leaf_of(p, j).relation; };
  std::string list = select_list(exprs);
  if (!list.empty()) list.resize(list.size() - 2);
  if (list.empty()) list = "1 AS c";
  return "SELECT " + list + " FROM " + from_tree(p, p.root, current) + where_and(p);
}

std::string sql_grouped_query(const ViewPlan& p, const std::vector<std::string>& calls) {
  std::vector<std::string> items;
  for (std::size_t i = 0; i < p.groups.size(); ++i) items.push_back(p.groups[i] + " AS g" + std::to_string(i));
  for (std::size_t i = 0; i < calls.size(); ++i) items.push_back(calls[i] + " AS a" + std::to_string(i));
  SourceFn current = [&](int j) { return leaf_of(p, j).relation; };
  return "SELECT " + join(items, ", ") + " FROM " + from_tree(p, p.root, current) + where_and(p) + group_by(p.groups);
}

std::string storage_options(const ViewPlan& p) {
  bool in_place = p.aggregate || p.locator >= 0 || (p.outer && p.view_key >= 0);
  return in_place ? " WITH (fillfactor = " + std::to_string(kFillfactor) + ")" : std::string();
}

namespace {

// StateColumn: a column of the aggregate state table, in the table's order.
struct StateColumn {
  std::string name, type, constraint;
};

// group_column: whether output column i holds a group (the group itself:
// never NULL for a live group, of the group's own type and modifier).
bool group_column(const ViewPlan& p, std::size_t i) {
  return std::find(p.group_columns.begin(), p.group_columns.end(), static_cast<int>(i)) != p.group_columns.end();
}

std::vector<StateColumn> state_columns(const ViewPlan& p) {
  std::vector<StateColumn> cols;
  if (p.global()) cols.push_back({"__k", "boolean", " NOT NULL DEFAULT true"});
  for (std::size_t i = 0; i < p.groups.size(); ++i) cols.push_back({"g" + std::to_string(i), p.group_types[i], ""});
  cols.push_back({"__cnt", "int8", " NOT NULL"});
  for (std::size_t i = 0; i < p.aggs.size(); ++i) {
    const Aggregate& ag = p.aggs[i];
    std::string n = std::to_string(i);
    cols.push_back({"a" + n, ag.state_type, ""});
    if (has_n(ag.kind)) cols.push_back({"n" + n, "int8", ""});
    if (ag.kind == AggKind::Min || ag.kind == AggKind::Max) {
      // d<i>/dc<i>: transient, the removed extreme handed to ON CONFLICT.
      if (p.extreme_counts) cols.push_back({"x" + n, "int8", ""});
      cols.push_back({"d" + n, ag.state_type, ""});
      if (p.extreme_counts) cols.push_back({"dc" + n, "int8", ""});
    }
  }
  cols.push_back({"__dirty", "boolean", " NOT NULL DEFAULT false"});
  return cols;
}

}  // namespace

std::vector<std::string> sql_create_storage(const ViewPlan& p) {
  std::vector<std::string> out;
  if (p.aggregate) {
    std::vector<std::string> defs;
    for (const StateColumn& c : state_columns(p)) defs.push_back(c.name + " " + c.type + c.constraint);
    out.push_back("CREATE TABLE " + p.state + " (" + join(defs, ", ") +
                  ") WITH (fillfactor = " + std::to_string(kFillfactor) + ")");
  }
  // Each maintenance updates the key rows it locks (an update, not a row lock:
  // see sql_lock_keys): room on the page keeps those updates HOT.
  if (!p.keylock.empty())
    out.push_back("CREATE TABLE " + p.keylock + " (k " + p.key_type +
                  " PRIMARY KEY) WITH (fillfactor = " + std::to_string(kFillfactor) + ")");
  return out;
}

std::vector<std::string> sql_create_indexes(const ViewPlan& p) {
  std::vector<std::string> out;
  if (p.aggregate) {
    out.push_back("CREATE UNIQUE INDEX ON " + p.state + " (" + join(state_groups(p), ", ") + ") NULLS NOT DISTINCT");
    if (!p.group_columns.empty()) {
      std::vector<std::string> cols;
      for (int c : p.group_columns) cols.push_back(p.columns[static_cast<std::size_t>(c)]);
      out.push_back("CREATE INDEX ON " + p.name + " (" + join(cols, ", ") + ")");
    }
  } else if (p.locator >= 0) {
    out.push_back("CREATE INDEX ON " + p.name + " (" + p.columns[static_cast<std::size_t>(p.locator)] + ")");
  }
  return out;
}

Populate sql_populate(const ViewPlan& p) {
  Populate out;
  out.view_columns = p.columns.size();
  if (!p.aggregate) {
    SourceFn current = [&](int j) { return leaf_of(p, j).relation; };
    out.rows = "SELECT " + join(p.outputs, ", ") + " FROM " + from_tree(p, p.root, current) + where_and(p);
    out.statements = {"INSERT INTO " + p.name + " " + out.rows};
    return out;
  }
  AggLayout lay = agg_layout(p);
  std::map<std::string, std::string> value;  // state column -> its value over the group's rows b
  value["__k"] = "true";
  for (std::size_t j = 0; j < lay.groups.size(); ++j) value["g" + std::to_string(j)] = "b." + lay.groups[j];
  value["__cnt"] = "count(*)";
  for (std::size_t i = 0; i < p.aggs.size(); ++i) {
    const Aggregate& ag = p.aggs[i];
    std::string n = std::to_string(i), arg = "b." + lay.arg[i];
    std::string& a = value["a" + n];
    switch (ag.kind) {
      case AggKind::CountStar: a = "count(*)" + filter_clause("b.", lay.filter[i]); break;
      case AggKind::Count: a = "count(" + arg + ")" + filter_clause("b.", lay.filter[i]); break;
      case AggKind::Sum:
      case AggKind::Avg: a = "sum((" + arg + ")::" + ag.state_type + ")" + filter_clause("b.", lay.filter[i]); break;
      case AggKind::BoolAnd:
      case AggKind::BoolOr: a = "count(*)" + filter_clause("b.", lay.filter[i], arg); break;
      default: a = recompute_call(ag, lay, i);
    }
    if (has_n(ag.kind)) value["n" + n] = "count(" + arg + ")" + filter_clause("b.", lay.filter[i]);
  }
  value["__dirty"] = "false";
  // Every column of the state table, in its order, of its type (what an
  // INSERT's assignment would cast to): the rows go to the table as they are.
  std::vector<std::string> vals;
  for (const StateColumn& c : state_columns(p)) {
    auto it = value.find(c.name);
    vals.push_back((it == value.end() ? std::string("NULL") : "(" + it->second + ")") + "::" + c.type + " AS " +
                   c.name);
  }
  out.state_columns = vals.size();
  std::string state = "SELECT " + join(vals, ", ") + " FROM (" + sql_body_rows(p, lay.exprs) + ") b" +
                      (p.global() ? std::string() : group_by(prefixed("b.", lay.groups)));
  // The view's row of each group, where the group has one: output expressions
  // are evaluated for those groups only (another may divide by zero).  A group
  // column is the group itself, and keeps its type modifier.
  std::vector<std::string> view;
  for (std::size_t i = 0; i < p.finals.size(); ++i)
    view.push_back(group_column(p, i) ? p.finals[i] : "CASE WHEN f.__emit THEN " + p.finals[i] + " END");
  out.rows = "SELECT s.*, " + join(view, ", ") + ", f.__emit FROM (" + state +
             ") s CROSS JOIN LATERAL (SELECT f.*, coalesce(" + output_condition(p) +
             ", false) AS __emit FROM (SELECT " + join(finalized_items(p), ", ") + ") f) f";
  out.statements = {"INSERT INTO " + p.state + " " + state, "INSERT INTO " + p.name + " SELECT " +
                                                                join(p.finals, ", ") + " FROM (" + finalized(p, "") +
                                                                ") f" + output_filter(p)};
  return out;
}

std::vector<std::string> sql_clear(const ViewPlan& p) {
  std::vector<std::string> out{"DELETE FROM " + p.name};
  if (p.aggregate) out.push_back("DELETE FROM " + p.state);
  return out;
}

std::string sql_lock_keys(const ViewPlan& p, const Changes& c) {
  if (p.keylock.empty()) return "";
  std::vector<std::string> keys;
  for (const auto& [i, d] : c) {
    const Leaf& l = leaf_of(p, i);
    if (l.key.empty()) continue;
    keys.push_back("SELECT (" + l.key + ")::" + p.key_type + " AS k FROM " + changed_rows(p, i, d) + " " + l.alias);
  }
  // Without a key class the whole view serializes on one lock row.
  std::string source = keys.empty() ? "SELECT true AS k" : join(keys, " UNION ALL ");
  // Sorted, so that two writers of the same keys queue instead of deadlocking;
  // an upsert, so that REPEATABLE READ sees a concurrent writer as a
  // serialization failure instead of maintaining from a stale snapshot.
  return "INSERT INTO " + p.keylock + " (k) SELECT DISTINCT k FROM (" + source +
         ") ivm_k WHERE k IS NOT NULL ORDER BY k ON CONFLICT (k) DO UPDATE SET k = EXCLUDED.k";
}

namespace {

// lock_clause: how a removal claims the physical copy it found.  Writers
// that may remove equal rows concurrently skip each other's copies; an
// exclusive maintainer (a deferred view's applier) needs no row locks.
std::string lock_clause(bool exclusive) { return exclusive ? "" : " FOR UPDATE OF v2 SKIP LOCKED"; }

// find_copies: for each row of d with __m < 0, the ctids (__tid) of -__m
// physical copies of it in the view, with d's columns; found through the
// locator index when the view has one.
std::string find_copies(const ViewPlan& p, const std::string& d, bool exclusive) {
  std::vector<std::string> cn = numbered("c", p.columns.size());
  std::string rows = "ROW(" + join(prefixed("v2.", p.columns), ", ") + ") IS NOT DISTINCT FROM ROW(" +
                     join(prefixed(d + ".", cn), ", ") + ")";
  std::string head = "SELECT z.__tid, " + join(prefixed(d + ".", cn), ", ") + " FROM " + d +
                     ", LATERAL (SELECT v2.ctid AS __tid FROM " + p.name + " v2 WHERE ";
  std::string tail = " LIMIT (-" + d + ".__m)" + lock_clause(exclusive) + ") z WHERE " + d + ".__m < 0";
  if (p.locator < 0) return head + rows + tail;
  std::string loc = p.columns[static_cast<std::size_t>(p.locator)];
  return probe_arms(head + ":ON AND " + rows + tail + " AND :ARM", {"v2." + loc},
                    {d + ".c" + std::to_string(p.locator)});
}

// bag_apply: applies signed bag d (columns c<i>, __m) to the view: removes
// |m| copies of each deleted row, adds m copies of each inserted one.
std::string bag_apply(const ViewPlan& p, const std::string& d, const std::string& del, const std::string& ins,
                      bool exclusive) {
  std::vector<std::string> cn = numbered("c", p.columns.size());
  return del + " AS (DELETE FROM " + p.name + " v USING (" + find_copies(p, d, exclusive) +
         ") t WHERE v.ctid = t.__tid RETURNING v.*), " + ins + " AS (INSERT INTO " + p.name + " SELECT " +
         join(prefixed(d + ".", cn), ", ") + " FROM " + d + ", generate_series(1, " + d + ".__m) WHERE " + d +
         ".__m > 0 RETURNING *)";
}

// apply_pairs: carries out the pairs of CTE pr (__tid: the view row to
// replace or remove, or NULL; __n: whether a new row comes; o<i>: the old
// row's values; c<i>: the new row's) as an UPDATE in place, a DELETE and an
// INSERT, each RETURNING what it changed.
std::string apply_pairs(const ViewPlan& p) {
  std::vector<std::string> cn = numbered("c", p.columns.size());
  std::vector<std::string> old_cols, new_cols;
  for (std::size_t i = 0; i < cn.size(); ++i) {
    old_cols.push_back("pr.o" + std::to_string(i));
    new_cols.push_back("v." + p.columns[i] + " AS n" + std::to_string(i));
  }
  std::string sql = ", upd AS (UPDATE " + p.name + " v SET (" + join(p.columns, ", ") + ") = ROW(" +
                    join(prefixed("pr.", cn), ", ") + ") FROM pr WHERE " +
                    by_tid("v", "pr", "pr.__n AND pr.__tid IS NOT NULL") + " RETURNING " + join(old_cols, ", ") + ", " +
                    join(new_cols, ", ") + ")";
  sql += ", del AS (DELETE FROM " + p.name + " v USING pr WHERE " + by_tid("v", "pr", "NOT pr.__n") + " RETURNING v.*)";
  sql += ", ins AS (INSERT INTO " + p.name + " SELECT " + join(prefixed("pr.", cn), ", ") +
         " FROM pr WHERE pr.__tid IS NULL RETURNING *)";
  return sql;
}

// paired_apply: applies consolidated change d (a CTE with columns c<i>, __m)
// to a view that has a locator column.  `gone` is a CTE naming, for each
// removed row copy, its ctid (__tid) and values (c<i>).  Removed and added
// rows are paired up per locator value: a pair becomes one UPDATE in place
// (HOT when no indexed column changes) instead of a DELETE and an INSERT;
// leftovers are deleted or inserted.
std::string paired_apply(const ViewPlan& p, const std::string& loc) {
  std::vector<std::string> cn = numbered("c", p.columns.size());
  std::string sql = ", came AS (SELECT " + lead(prefixed("d.", cn)) + "row_number() OVER (PARTITION BY d." + loc +
                    ") AS __rn FROM d, generate_series(1, d.__m) WHERE d.__m > 0)";
  sql += ", gp AS (SELECT gone.*, row_number() OVER (PARTITION BY gone." + loc + ") AS __rn FROM gone)";
  std::vector<std::string> prc{"gp.__tid", "came.__rn IS NOT NULL AS __n"};
  for (std::size_t i = 0; i < cn.size(); ++i) {
    prc.push_back("gp." + cn[i] + " AS o" + std::to_string(i));
    prc.push_back("came." + cn[i]);
  }
  sql += ", pr AS (SELECT " + join(prc, ", ") + " FROM gp FULL JOIN came ON gp." + loc + " = came." + loc +
         " AND gp.__rn = came.__rn)";
  return sql + apply_pairs(p);
}

std::string paired_result(const ViewPlan& p) {
  std::vector<std::string> as_old, as_new;
  for (std::size_t i = 0; i < p.columns.size(); ++i) {
    as_old.push_back("o" + std::to_string(i) + " AS " + p.columns[i]);
    as_new.push_back("n" + std::to_string(i));
  }
  return " SELECT " + join(as_old, ", ") + ", -1::int8 AS __m FROM upd UNION ALL SELECT " + join(as_new, ", ") +
         ", 1::int8 FROM upd UNION ALL SELECT del.*, -1::int8 FROM del UNION ALL SELECT ins.*, 1::int8 FROM ins";
}

// keyed_outer_apply: an outer-join view whose rows show their join key in
// column view_key.  The affected keys' rows are read from the view with their
// ctids and consolidated against the recomputed rows (unchanged rows cancel);
// what remains is paired up per key.  When every leaf is unique on the key
// (unique_key), a key has at most one row, and the old and new rows are simply
// joined on it.  Writers of the same keys are serialized by the key locks
// taken before, so the rows read stay as read.
std::string keyed_outer_apply(const ViewPlan& p, const Changes& c, bool exclusive) {
  std::vector<std::string> cn = numbered("c", p.columns.size());
  OuterDelta od = outer_delta(p, c, p.outputs);
  std::string sql = od.keys;
  const std::string& key = p.columns[static_cast<std::size_t>(p.view_key)];
  if (p.unique_key) {
    // At most one row per key before and after: the view's row and the
    // recomputed one meet in a join on the key; a pair that differs becomes
    // an update, a lone old row a delete, a lone new row an insert.
    std::string vk = std::to_string(p.view_key);
    std::vector<std::string> on = numbered("o", p.columns.size()), olds, prc{"o.__tid", "n.__m IS NOT NULL AS __n"};
    for (std::size_t i = 0; i < cn.size(); ++i) {
      olds.push_back("v." + p.columns[i] + " AS " + on[i]);
      prc.push_back("o." + on[i]);
      prc.push_back("n." + cn[i]);
    }
    sql += ", n AS (" + od.now + "), o AS (SELECT v.ctid AS __tid, " + join(olds, ", ") + " FROM ivm_keys JOIN " +
           p.name + " v ON v." + key + " = ivm_keys.k)";
    sql += ", pr AS (SELECT " + join(prc, ", ") + " FROM o FULL JOIN n ON o.o" + vk + " = n.c" + vk +
           " WHERE o.__tid IS NULL OR n.__m IS NULL OR ROW(" + join(prefixed("o.", on), ", ") +
           ") IS DISTINCT FROM ROW(" + join(prefixed("n.", cn), ", ") + "))" + apply_pairs(p);
  } else {
    sql += ", d AS (SELECT " + lead(cn) +
           "sum(__m)::int8 AS __m, array_agg(__tid) FILTER (WHERE __tid IS NOT NULL) AS __tids FROM (SELECT v.ctid, " +
           lead(prefixed("v.", p.columns)) + "-1::int8 FROM ivm_keys JOIN " + p.name + " v ON v." + key +
           " = ivm_keys.k UNION ALL SELECT NULL::tid, " + od.now.substr(std::string("SELECT ").size()) +
           ") ivm_b(__tid, " + lead(cn) + "__m)" + group_by(cn) + " HAVING sum(__m) <> 0)";
    sql += ", gone AS (SELECT d.__tids[i] AS __tid, " + join(prefixed("d.", cn), ", ") +
           " FROM d, generate_series(1, -d.__m) i WHERE d.__m < 0)";
    sql += paired_apply(p, "c" + std::to_string(p.view_key));
  }
  // Rows with a NULL key: no key lock covers them; they go through as a bag.
  if (od.alone.empty()) return sql + paired_result(p);
  sql += ", nk AS (SELECT " + lead(cn) + "sum(__m)::int8 AS __m FROM (" + join(od.alone, " UNION ALL ") + ") ivm_z" +
         group_by(cn) + " HAVING sum(__m) <> 0), " + bag_apply(p, "nk", "zdel", "zins", exclusive);
  return sql + paired_result(p) +
         " UNION ALL SELECT zdel.*, -1::int8 FROM zdel UNION ALL SELECT zins.*, 1::int8 FROM zins";
}

}  // namespace

namespace {

// consolidated_delta: "WITH d AS (...)", the change of a view without
// aggregates as rows c<i> with their net multiplicity __m (rows whose
// changes cancel are gone), ordered by the locator when there is one: the
// removed rows are then probed in index order.
std::string consolidated_delta(const ViewPlan& p, const Changes& c) {
  std::vector<std::string> cn = numbered("c", p.columns.size());
  return "WITH d AS (SELECT " + lead(cn) + "sum(__m)::int8 AS __m FROM (" + sql_body_delta(p, c, p.outputs) +
         ") ivm_b" + group_by(cn) + " HAVING sum(__m) <> 0" +
         (p.locator >= 0 ? " ORDER BY c" + std::to_string(p.locator) : std::string()) + ")";
}

}  // namespace

std::string sql_spj_apply(const ViewPlan& p, const Changes& c, bool exclusive) {
  if (p.outer && p.view_key >= 0) return keyed_outer_apply(p, c, exclusive);
  std::vector<std::string> cn = numbered("c", p.columns.size());
  std::string d = consolidated_delta(p, c);
  if (p.unique_key && !p.outer && p.locator >= 0) {
    // One row per locator value, never NULL: a removed row (-1) is the view's
    // row of its locator value, and meets the added row (+1) of that value.
    std::string loc = std::to_string(p.locator);
    std::vector<std::string> olds, prc{"o.__tid", "n.__m IS NOT NULL AS __n"};
    for (std::size_t i = 0; i < cn.size(); ++i) {
      olds.push_back("d." + cn[i] + " AS o" + std::to_string(i));
      prc.push_back("o.o" + std::to_string(i));
      prc.push_back("n." + cn[i]);
    }
    // One index probe per removed row (LATERAL ... LIMIT 1): a large batch
    // must not make the planner hash the whole view.
    return d + ", o AS (SELECT v.__tid, " + join(olds, ", ") + " FROM d, LATERAL (SELECT v.ctid AS __tid FROM " +
           p.name + " v WHERE v." + p.columns[static_cast<std::size_t>(p.locator)] + " = d.c" + loc +
           " LIMIT 1) v WHERE d.__m < 0), pr AS (SELECT " + join(prc, ", ") +
           " FROM o FULL JOIN (SELECT * FROM d WHERE d.__m > 0) n ON o.o" + loc + " = n.c" + loc + ")" +
           apply_pairs(p) + paired_result(p);
  }
  if (p.locator < 0)
    return d + ", " + bag_apply(p, "d", "del", "ins", exclusive) +
           " SELECT del.*, -1::int8 AS __m FROM del UNION ALL SELECT ins.*, 1::int8 FROM ins";
  return d + ", gone AS (" + find_copies(p, "d", exclusive) + ")" + paired_apply(p, "c" + std::to_string(p.locator)) +
         paired_result(p);
}

std::string key_column(const Leaf& l) {
  std::string prefix = l.alias + ".";
  if (l.key.compare(0, prefix.size(), prefix) != 0 || l.key.size() == prefix.size()) return "";
  std::string c = l.key.substr(prefix.size());
  if (c.front() != '"') {
    for (char ch : c)
      if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) return "";
    return c;
  }
  // A quoted identifier: "" inside stands for one ".
  std::string out;
  if (c.size() < 2 || c.back() != '"') return "";
  for (std::size_t i = 1; i + 1 < c.size(); ++i) {
    if (c[i] == '"') {
      if (i + 2 >= c.size() || c[i + 1] != '"') return "";
      ++i;
    }
    out += c[i];
  }
  return out;
}

std::vector<int> keyed_columns(const ViewPlan& p) {
  if (p.aggregate) return p.global() ? std::vector<int>{} : p.group_columns;
  if (!p.unique_key) return {};
  if (!p.outer) return p.locator >= 0 ? std::vector<int>{p.locator} : std::vector<int>{};
  // The affected keys name the view's rows: their type must be the column's.
  if (p.view_key < 0 || p.key_type != p.types[static_cast<std::size_t>(p.view_key)]) return {};
  return {p.view_key};
}

std::string sql_spj_rows(const ViewPlan& p, const Changes& c) {
  if (p.aggregate || keyed_columns(p).empty()) return "";
  std::vector<std::string> cn = numbered("c", p.columns.size());
  if (!p.outer) {
    // At most one row per locator value before and after: per value, the
    // added row if there is one (live), else the removed one.
    std::string loc = "c" + std::to_string(p.locator);
    return consolidated_delta(p, c) + " SELECT DISTINCT ON (" + loc + ") __m, __m > 0 AS __live, " + join(cn, ", ") +
           " FROM d ORDER BY " + loc + ", __m DESC";
  }
  OuterDelta od = outer_delta(p, c, p.outputs);
  // Rows with a NULL key are no key's: the SQL statement passes them as a bag.
  if (!od.alone.empty()) return "";
  // Per affected key, its recomputed row, if any (at most one: unique_key).
  std::string vk = "c" + std::to_string(p.view_key);
  std::vector<std::string> items{"n.__m IS NOT NULL AS __live"};
  for (std::size_t i = 0; i < cn.size(); ++i)
    items.push_back(static_cast<int>(i) == p.view_key ? "coalesce(n." + vk + ", ivm_keys.k) AS " + vk : "n." + cn[i]);
  return od.keys + ", n AS (" + od.now + ") SELECT " + join(items, ", ") + " FROM ivm_keys LEFT JOIN n ON n." + vk +
         " = ivm_keys.k";
}

namespace {

// AggUpsert: the state upsert as its WITH list (the per-group deltas) and
// the INSERT ... ON CONFLICT ... RETURNING s.* reading it; `deltas` is the
// SELECT that INSERT inserts, its columns named as the state's.
struct AggUpsert {
  std::string with, insert, deltas;
  // The same upsert reading the groups' deltas from kDeltasRelation (the
  // result of `deltas`) instead of computing them.
  std::string insert_deltas;
};

AggUpsert agg_upsert(const ViewPlan& p, const Changes& c) {
  AggLayout lay = agg_layout(p);
  std::string gl = lead(lay.groups);
  std::string sql = "WITH d AS (" + sql_body_delta(p, c, lay.exprs) + ")";
  std::vector<std::string> deltas{"sum(__m)::int8 AS __cnt"};
  for (std::size_t i = 0; i < p.aggs.size(); ++i) {
    const Aggregate& ag = p.aggs[i];
    std::string n = std::to_string(i), arg = lay.arg[i], f = lay.filter[i];
    std::string nn = arg.empty() ? "" : arg + " IS NOT NULL";
    switch (ag.kind) {
      case AggKind::CountStar:
        deltas.push_back("coalesce(sum(__m)" + filter_clause("", f) + ", 0)::int8 AS a" + n);
        break;
      case AggKind::Count:
        deltas.push_back("coalesce(sum(__m)" + filter_clause("", f, nn) + ", 0)::int8 AS a" + n);
        break;
      case AggKind::Sum:
      case AggKind::Avg:
        deltas.push_back("sum((" + arg + ")::" + ag.state_type + " * __m)" + filter_clause("", f) + " AS a" + n);
        deltas.push_back("coalesce(sum(__m)" + filter_clause("", f, nn) + ", 0)::int8 AS n" + n);
        break;
      case AggKind::BoolAnd:
      case AggKind::BoolOr:
        deltas.push_back("coalesce(sum(__m)" + filter_clause("", f, arg) + ", 0)::int8 AS a" + n);
        deltas.push_back("coalesce(sum(__m)" + filter_clause("", f, nn) + ", 0)::int8 AS n" + n);
        break;
      default: break;
    }
  }
  // __g: the group as one composite value.  Composite values compare NULL
  // fields as equal and can be sorted or hashed, so joining per-group CTEs on
  // it stays linear for large batches (an OR of "=" and "both NULL" would
  // force a nested loop).
  std::string gkey = p.global() ? std::string() : "ROW(" + join(lay.groups, ", ") + ") AS __g, ";
  sql += ", gd AS (SELECT " + gl + gkey + join(deltas, ", ") + " FROM d" + group_by(lay.groups) + ")";
  std::string from = "gd";
  for (std::size_t i = 0; i < p.aggs.size(); ++i) {
    const Aggregate& ag = p.aggs[i];
    if (ag.kind != AggKind::Min && ag.kind != AggKind::Max) continue;
    std::string n = std::to_string(i), arg = lay.arg[i];
    std::string fn = ag.kind == AggKind::Min ? "min" : "max";
    // Net change per distinct value: an UPDATE that keeps the value is no delete.
    std::string where = " WHERE " + (lay.filter[i].empty() ? "" : lay.filter[i] + " AND ") + arg + " IS NOT NULL";
    std::string x = "(SELECT " + gl + arg + " AS v, sum(__m) AS s FROM d" + where + " GROUP BY " + gl + arg + ") x";
    if (!p.extreme_counts) {
      sql += ", mm" + n + " AS (SELECT " + gl + gkey + fn + "(v) FILTER (WHERE s < 0) AS del, " + fn +
             "(v) FILTER (WHERE s > 0) AS ins FROM " + x + group_by(lay.groups) + ")";
    } else {
      // Per group, the extreme value among the added ones and among the
      // removed ones, each with its (net) number of rows.
      std::string order = ag.kind == AggKind::Min ? "" : " DESC";
      std::string y = "(SELECT DISTINCT ON (" + gl + "s > 0) " + gl + "s > 0 AS pos, v, s FROM " + x +
                      " WHERE s <> 0 ORDER BY " + gl + "s > 0, v" + order + ") y";
      sql += ", mm" + n + " AS (SELECT " + gl + gkey + fn +
             "(v) FILTER (WHERE NOT pos) AS del, -sum(s) FILTER (WHERE NOT pos) AS delc, " + fn +
             "(v) FILTER (WHERE pos) AS ins, sum(s) FILTER (WHERE pos) AS insc FROM " + y + group_by(lay.groups) + ")";
    }
    from += " LEFT JOIN mm" + n + " ON " + (p.global() ? std::string("true") : "gd.__g = mm" + n + ".__g");
  }
  std::vector<std::string> sg = state_groups(p);
  std::vector<std::string> cols = sg, vals, sets{"__cnt = s.__cnt + EXCLUDED.__cnt"}, dirty;
  if (p.global())
    vals.push_back("true");
  else
    vals = prefixed("gd.", lay.groups);
  cols.push_back("__cnt");
  vals.push_back("gd.__cnt");
  bool recompute = false;
  std::vector<std::string> new_dirty;
  for (std::size_t i = 0; i < p.aggs.size(); ++i) {
    const Aggregate& ag = p.aggs[i];
    std::string n = std::to_string(i), a = "a" + n;
    switch (ag.kind) {
      case AggKind::CountStar:
      case AggKind::Count:
        cols.push_back(a);
        vals.push_back("gd." + a);
        sets.push_back(a + " = s." + a + " + EXCLUDED." + a);
        break;
      case AggKind::Sum:
      case AggKind::Avg:
        cols.insert(cols.end(), {a, "n" + n});
        vals.insert(vals.end(), {"gd." + a, "gd.n" + n});
        sets.push_back("n" + n + " = s.n" + n + " + EXCLUDED.n" + n);
        sets.push_back(a + " = CASE WHEN s.n" + n + " + EXCLUDED.n" + n + " = 0 THEN NULL ELSE coalesce(s." + a +
                       " + EXCLUDED." + a + ", s." + a + ", EXCLUDED." + a + ") END");
        break;
      case AggKind::BoolAnd:
      case AggKind::BoolOr:
        cols.insert(cols.end(), {a, "n" + n});
        vals.insert(vals.end(), {"gd." + a, "gd.n" + n});
        sets.push_back(a + " = s." + a + " + EXCLUDED." + a);
        sets.push_back("n" + n + " = s.n" + n + " + EXCLUDED.n" + n);
        break;
      case AggKind::Min:
      case AggKind::Max: {
        bool is_min = ag.kind == AggKind::Min;
        std::string A = "s." + a, D = "EXCLUDED.d" + n, I = "EXCLUDED." + a;
        if (!p.extreme_counts) {
          std::string lost =
              "(" + D + " IS NOT NULL AND (" + A + " IS NULL OR " + D + (is_min ? " <= " : " >= ") + A + "))";
          cols.insert(cols.end(), {a, "d" + n});
          vals.insert(vals.end(), {"mm" + n + ".ins", "mm" + n + ".del"});
          sets.push_back(a + " = CASE WHEN " + lost + " THEN NULL ELSE " + (is_min ? "LEAST" : "GREATEST") + "(" + A +
                         ", " + I + ") END");
          sets.push_back("d" + n + " = NULL");
          dirty.push_back(lost);
          new_dirty.push_back("mm" + n + ".del IS NOT NULL");
          break;
        }
        // x<i>: how many rows hold the extreme (NULL: not known, as after
        // the initial population).  The extreme is lost when all of them
        // go, or some go and their number is not known; a value beyond the
        // extreme being removed means the state is off: recompute as well.
        std::string X = "s.x" + n, DC = "EXCLUDED.dc" + n, IC = "EXCLUDED.x" + n;
        std::string beyond = is_min ? " < " : " > ";
        std::string lost = "(" + D + " IS NOT NULL AND (" + A + " IS NULL OR " + D + beyond + A + " OR (" + D + " = " +
                           A + " AND (" + X + " IS NULL OR " + X + " <= " + DC + "))))";
        // A value added beyond the old extreme is the new one, lost or not:
        // every remaining row is on the other side of the old extreme.
        std::string further = "coalesce(" + I + beyond + A + ", false)";
        cols.insert(cols.end(), {a, "x" + n, "d" + n, "dc" + n});
        vals.insert(vals.end(), {"mm" + n + ".ins", "mm" + n + ".insc", "mm" + n + ".del", "mm" + n + ".delc"});
        sets.push_back(a + " = CASE WHEN " + further + " THEN " + I + " WHEN " + lost + " THEN NULL ELSE coalesce(" +
                       A + ", " + I + ") END");
        sets.push_back("x" + n + " = CASE WHEN " + further + " THEN " + IC + " WHEN " + lost + " THEN NULL WHEN " + A +
                       " IS NULL THEN " + IC + " ELSE " + X + " - CASE WHEN " + D + " = " + A + " THEN " + DC +
                       " ELSE 0 END + CASE WHEN " + I + " = " + A + " THEN " + IC + " ELSE 0 END END");
        sets.push_back("d" + n + " = NULL");
        sets.push_back("dc" + n + " = NULL");
        dirty.push_back("(" + lost + " AND NOT " + further + ")");
        new_dirty.push_back("mm" + n + ".del IS NOT NULL");
        break;
      }
      case AggKind::Recompute: recompute = true; break;
    }
  }
  cols.push_back("__dirty");
  if (recompute) {
    vals.push_back("true");
    sets.push_back("__dirty = true");
  } else {
    vals.push_back(new_dirty.empty() ? "false" : "(" + join(new_dirty, " OR ") + ")");
    sets.push_back("__dirty = " +
                   (dirty.empty() ? std::string("s.__dirty") : "(s.__dirty OR " + join(dirty, " OR ") + ")"));
  }
  std::string rows = " FROM " + from + " WHERE gd.__cnt IS NOT NULL";
  // Sorted by group: concurrent writers lock shared groups in the same order.
  if (!p.global()) rows += " ORDER BY " + join(prefixed("gd.", lay.groups), ", ");
  std::string conflict = " ON CONFLICT (" + join(sg, ", ") + ") DO UPDATE SET " + join(sets, ", ") + " RETURNING s.*";
  std::string insert =
      "INSERT INTO " + p.state + " AS s (" + join(cols, ", ") + ") SELECT " + join(vals, ", ") + rows + conflict;
  std::string insert_deltas = "INSERT INTO " + p.state + " AS s (" + join(cols, ", ") + ") SELECT " + join(cols, ", ") +
                              " FROM " + kDeltasRelation +
                              (p.global() ? std::string() : " ORDER BY " + join(sg, ", ")) + conflict;
  // Cast as the INSERT assigns them (sum(int8) is numeric, the state int8).
  std::map<std::string, std::string> type_of;
  for (const StateColumn& sc : state_columns(p)) type_of[sc.name] = sc.type;
  std::vector<std::string> named;
  for (std::size_t i = 0; i < cols.size(); ++i)
    named.push_back("(" + vals[i] + ")::" + type_of.at(cols[i]) + " AS " + cols[i]);
  return {sql, insert, sql + " SELECT " + join(named, ", ") + rows, insert_deltas};
}

// upsert_rows: the upsert `insert`, after the WITH items `with` ("WITH ..."
// or ""), returning each group it changed with its view row.
std::string upsert_rows(const ViewPlan& p, const std::string& with, const std::string& insert) {
  // The upsert's WITH list gains the upsert itself (up) and the finalized
  // groups (f); the statement then returns each group with its view row.
  std::string sql = (with.empty() ? "WITH " : with + ", ") + "up AS (" + insert + ")";
  std::vector<std::string> items = finalized_items(p);
  items.push_back("s.__dirty");
  sql += ", f AS (SELECT " + join(items, ", ") + " FROM up s), fl AS (SELECT f.*, coalesce(" + output_condition(p) +
         ", false) AS __live FROM f)";
  std::vector<std::string> outs{"f.*"};
  // Output expressions are evaluated for live groups only (an emptied group
  // may divide by zero); a group column is the group itself, and finds the
  // group's row in the view whether the group is live or not.
  for (std::size_t i = 0; i < p.columns.size(); ++i)
    outs.push_back((group_column(p, i) ? p.finals[i] : "CASE WHEN f.__live THEN " + p.finals[i] + " END") + " AS c" +
                   std::to_string(i));
  return sql + " SELECT " + join(outs, ", ") + " FROM fl f";
}

}  // namespace

std::string sql_agg_upsert(const ViewPlan& p, const Changes& c) {
  AggUpsert u = agg_upsert(p, c);
  return u.with + " " + u.insert;
}

std::string sql_agg_upsert_rows(const ViewPlan& p, const Changes& c) {
  AggUpsert u = agg_upsert(p, c);
  return upsert_rows(p, u.with, u.insert);
}

std::string sql_agg_upsert_rows_from_deltas(const ViewPlan& p, const Changes& c) {
  return upsert_rows(p, "", agg_upsert(p, c).insert_deltas);
}

std::vector<int> merged_columns(const ViewPlan& p) {
  if (!p.aggregate || p.global() || !p.extreme_counts || !p.having.empty()) return {};
  for (const Aggregate& ag : p.aggs)
    if (ag.kind == AggKind::Recompute) return {};
  if (p.finals.size() != p.columns.size()) return {};
  std::vector<int> out;
  for (std::size_t i = 0; i < p.finals.size(); ++i) {
    auto g = std::find(p.group_columns.begin(), p.group_columns.end(), static_cast<int>(i));
    if (g != p.group_columns.end()) {
      // A group column is the group itself.
      int j = static_cast<int>(g - p.group_columns.begin());
      if (p.finals[i] != "f.g" + std::to_string(j)) return {};
      out.push_back(-1 - j);
      continue;
    }
    int agg = -1;
    for (std::size_t a = 0; a < p.aggs.size() && agg < 0; ++a)
      if (p.finals[i] == "f.a" + std::to_string(a)) agg = static_cast<int>(a);
    if (agg < 0) return {};
    out.push_back(agg);
  }
  return out;
}

bool state_mergeable(const ViewPlan& p) { return !merged_columns(p).empty(); }

std::string sql_agg_deltas(const ViewPlan& p, const Changes& c) { return agg_upsert(p, c).deltas; }

bool foldable(const ViewPlan& p) {
  if (!state_mergeable(p)) return false;
  for (const Aggregate& ag : p.aggs)
    if ((ag.kind == AggKind::Sum || ag.kind == AggKind::Avg) &&
        (ag.interval_avg || (ag.state_type != "bigint" && ag.state_type != "numeric")))
      return false;
  return true;
}

namespace {

// delta_items: the columns of sql_agg_delta_rows but __m, as (name, value),
// each value over the columns `col` gives the layout's expressions.
std::vector<std::pair<std::string, std::string>> delta_items(
    const ViewPlan& p, const AggLayout& lay, const std::function<std::string(const std::string&)>& col) {
  std::vector<std::pair<std::string, std::string>> items;
  for (std::size_t j = 0; j < lay.groups.size(); ++j) items.emplace_back("g" + std::to_string(j), col(lay.groups[j]));
  for (std::size_t i = 0; i < p.aggs.size(); ++i) {
    const Aggregate& ag = p.aggs[i];
    std::string n = std::to_string(i);
    if (!lay.arg[i].empty()) {
      bool sum = ag.kind == AggKind::Sum || ag.kind == AggKind::Avg;
      items.emplace_back("v" + n, sum ? "(" + col(lay.arg[i]) + ")::" + ag.state_type : col(lay.arg[i]));
    }
    if (!lay.filter[i].empty()) items.emplace_back("f" + n, col(lay.filter[i]));
  }
  return items;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> agg_delta_items(const ViewPlan& p) {
  if (!foldable(p)) return {};
  AggLayout lay = agg_layout(p);
  return delta_items(p, lay, [&](const std::string& c) { return lay.exprs[std::stoul(c.substr(1))]; });
}

std::string sql_agg_delta_rows(const ViewPlan& p, const Changes& c) {
  if (!foldable(p)) return "";
  AggLayout lay = agg_layout(p);
  std::vector<std::string> items;
  for (const auto& [name, value] : delta_items(p, lay, [](const std::string& col) { return "d." + col; }))
    items.push_back(value + " AS " + name);
  items.push_back("d.__m");
  return "SELECT " + join(items, ", ") + " FROM (" + sql_body_delta(p, c, lay.exprs) + ") d ORDER BY " +
         join(prefixed("d.", lay.groups), ", ");
}

std::string sql_agg_gc(const ViewPlan& p) {
  std::vector<std::string> sg = state_groups(p);
  return "DELETE FROM " + p.state + " s USING (SELECT " + join(sg, ", ") + " FROM " + kGroupsRelation +
         " WHERE __cnt = 0) g WHERE " + match(prefixed("s.", sg), prefixed("g.", sg)) + " AND s.__cnt = 0";
}

std::string sql_agg_recompute(const ViewPlan& p) {
  AggLayout lay = agg_layout(p);
  std::string g = kGroupsRelation;
  std::vector<std::string> bg = prefixed("b.", lay.groups);
  std::vector<std::string> sets, items = bg, picked{"r0.*"};
  // With counts, each extreme comes from e<i>: per group, the extreme of the
  // group's values counted per value, with its count.  e<i> and r0 (the other
  // recomputed aggregates) share one read of the dirty groups' rows (b), and
  // are joined on the group as one composite value (NULL-safe).
  std::string gkey = "ROW(" + join(bg, ", ") + ")";
  std::string extremes, joined;
  for (std::size_t i = 0; i < p.aggs.size(); ++i) {
    const Aggregate& ag = p.aggs[i];
    if (ag.kind != AggKind::Min && ag.kind != AggKind::Max && ag.kind != AggKind::Recompute) continue;
    std::string n = std::to_string(i), a = "a" + n;
    sets.push_back(a + " = r." + a);
    if (ag.kind == AggKind::Recompute || !p.extreme_counts) {
      items.push_back(recompute_call(ag, lay, i) + " AS " + a);
      continue;
    }
    std::string v = "b." + lay.arg[i], gl = lead(bg);
    std::string where = " WHERE " + (lay.filter[i].empty() ? "" : "b." + lay.filter[i] + " AND ") + v + " IS NOT NULL";
    std::string order = ag.kind == AggKind::Min ? "" : " DESC";
    if (p.global())
      extremes += ", e" + n + " AS (SELECT " + v + " AS v, count(*) AS x FROM b" + where + " GROUP BY " + v +
                  " ORDER BY " + v + order + " LIMIT 1)";
    else
      extremes += ", e" + n + " AS (SELECT DISTINCT ON (" + join(bg, ", ") + ") " + gkey + " AS __g, " + v +
                  " AS v, count(*) AS x FROM b" + where + " GROUP BY " + gl + v + " ORDER BY " + gl + v + order + ")";
    joined += " LEFT JOIN e" + n + " ON " + (p.global() ? std::string("true") : "r0.__g = e" + n + ".__g");
    picked.push_back("e" + n + ".v AS " + a);
    picked.push_back("e" + n + ".x AS x" + n);
    sets.push_back("x" + n + " = r.x" + n);
  }
  sets.push_back("__dirty = false");
  std::string rows;
  if (p.global()) {
    rows = "SELECT * FROM (" + sql_body_rows(p, lay.exprs) + ") ivm_r WHERE EXISTS (SELECT 1 FROM " + g +
           " WHERE __dirty)";
  } else {
    std::vector<std::string> sg = state_groups(p);
    std::string tuple = "(" + join(p.groups, ", ") + ")";
    std::vector<std::string> nulls;
    for (const auto& c : sg) nulls.push_back(c + " IS NULL");
    // Non-NULL groups are found through IN (index friendly); groups with a NULL
    // key, rare, through IS NOT DISTINCT FROM, behind a one-time gate.
    std::string extra1 = tuple + " IN (SELECT " + join(sg, ", ") + " FROM " + g + " WHERE __dirty)";
    std::vector<std::string> row_nulls;
    for (const auto& e : p.groups) row_nulls.push_back("(" + e + ") IS NULL");
    // The second arm takes only rows whose own group key has a NULL, so no
    // row is read by both arms.
    std::string extra2 = "EXISTS (SELECT 1 FROM " + g + " WHERE __dirty AND (" + join(nulls, " OR ") + ")) AND (" +
                         join(row_nulls, " OR ") + ") AND EXISTS (SELECT 1 FROM " + g + " WHERE __dirty AND ROW(" +
                         join(sg, ", ") + ") IS NOT DISTINCT FROM ROW(" + join(p.groups, ", ") + "))";
    auto with_extra = [&](const std::string& extra) {
      ViewPlan q = p;
      q.where = p.where.empty() ? extra : "(" + p.where + ") AND " + extra;
      return sql_body_rows(q, lay.exprs);
    };
    rows = with_extra(extra1) + " UNION ALL " + with_extra(extra2);
  }
  std::string grouped = p.global() ? std::string() : group_by(bg);
  std::string r;
  if (extremes.empty()) {
    r = "SELECT " + join(items, ", ") + " FROM (" + rows + ") b" + grouped;
  } else {
    if (!p.global()) items.push_back(gkey + " AS __g");
    // A global view with only extremes: r0 still yields its one row.
    if (items.empty()) items.push_back("count(*) AS __rows");
    r = "WITH b AS MATERIALIZED (" + rows + "), r0 AS (SELECT " + join(items, ", ") + " FROM b" + grouped + ")" +
        extremes + " SELECT " + join(picked, ", ") + " FROM r0" + joined;
  }
  if (p.global()) return "UPDATE " + p.state + " s SET " + join(sets, ", ") + " FROM (" + r + ") r WHERE s.__dirty";
  // Each recomputed group finds its state row by one probe of the state's
  // group index, and the UPDATE reaches those rows by ctid.  A NULL-safe join
  // (= OR both NULL) can only be a nested loop, which a bulk DELETE emptying
  // the extremes of thousands of groups turned quadratic.
  std::vector<std::string> sg = state_groups(p);
  std::string probe = "SELECT rc.*, w.ctid AS __tid FROM rc JOIN LATERAL (SELECT s.ctid FROM " + p.state +
                      " s WHERE :ON LIMIT 1) w ON true WHERE :ARM";
  return "WITH rc AS (" + r + "), r AS (" + probe_arms(probe, prefixed("s.", sg), prefixed("rc.", lay.groups)) +
         ") UPDATE " + p.state + " s SET " + join(sets, ", ") + " FROM r WHERE " + by_tid("s", "r", "true") +
         " AND s.__dirty";
}

std::string sql_agg_apply(const ViewPlan& p, bool reread_state, AggApplyCase groups) {
  std::string g = kGroupsRelation;
  std::vector<std::string> sg = state_groups(p);
  // f: the finalized state of every affected group.  The upsert returned the
  // state rows it left; only a recomputation since then sends us back to the
  // state table.
  std::string f =
      reread_state
          ? finalized(p, p.global() ? "" : " JOIN " + g + " g ON " + match(prefixed("s.", sg), prefixed("g.", sg)))
          : finalized_from(p, g + " s");
  std::string sql = "WITH f AS (" + f + ")";
  // ov: per affected group, whether it has an output row now (__live), that
  // row (c<i>), and its row in the view (o<i>, __tid), found by one probe of
  // the view's group index.  Output expressions are evaluated for live groups
  // only, as a WHERE clause would (an emptied group may divide by zero).
  std::string live = output_condition(p);
  std::vector<std::string> oc = numbered("c", p.columns.size());
  std::vector<std::string> ovc{"w.ctid AS __tid", "f.__live"};
  for (std::size_t i = 0; i < p.columns.size(); ++i) {
    ovc.push_back("w." + p.columns[i] + " AS o" + std::to_string(i));
    ovc.push_back("CASE WHEN f.__live THEN " + p.finals[i] + " END AS " + oc[i]);
  }
  std::string probe =
      "SELECT " + join(ovc, ", ") + " FROM (SELECT f.*, coalesce(" + live + ", false) AS __live FROM f) f LEFT JOIN ";
  if (p.global()) {
    // A global aggregate has at most one row.
    sql += ", ov AS (" + probe + p.name + " w ON true)";
  } else {
    // A group has at most one row: one index probe per group (LIMIT 1), which
    // the planner cannot turn into a hash join reading the whole view for a
    // large batch.
    probe += "LATERAL (SELECT w.ctid, " + join(prefixed("w.", p.columns), ", ") + " FROM " + p.name +
             " w WHERE :ON LIMIT 1) w ON true";
    std::vector<std::string> wg;
    for (int c : p.group_columns) wg.push_back("w." + p.columns[static_cast<std::size_t>(c)]);
    sql += ", ov AS (" + probe_arms(probe + " WHERE :ARM", wg, prefixed("f.", sg), groups.null_keys) + ")";
  }
  // Rows whose group keeps an output row are updated in place (a HOT update
  // when no indexed column changes: hot groups do not bloat the index), and
  // only when their values changed.
  std::vector<std::string> old_cols, new_cols;
  for (std::size_t i = 0; i < p.columns.size(); ++i) {
    old_cols.push_back("ov.o" + std::to_string(i));
    new_cols.push_back("v." + p.columns[i] + " AS n" + std::to_string(i));
  }
  std::string changed =
      "ov.__live AND ROW(" + join(old_cols, ", ") + ") IS DISTINCT FROM ROW(" + join(prefixed("ov.", oc), ", ") + ")";
  sql += ", upd AS (UPDATE " + p.name + " v SET (" + join(p.columns, ", ") + ") = ROW(" +
         join(prefixed("ov.", oc), ", ") + ") FROM ov WHERE " + by_tid("v", "ov", changed) + " RETURNING " +
         join(old_cols, ", ") + ", " + join(new_cols, ", ") + ")";
  // Rows of groups that lost their output row (emptied, or failing HAVING),
  // and groups that gained one.  Without HAVING, only an emptied group loses
  // its row.
  bool losing = groups.emptied || !p.having.empty();
  if (losing)
    sql += ", del AS (DELETE FROM " + p.name + " v USING ov WHERE " + by_tid("v", "ov", "NOT ov.__live") +
           " RETURNING v.*)";
  sql += ", ins AS (INSERT INTO " + p.name + " SELECT " + join(prefixed("ov.", oc), ", ") +
         " FROM ov WHERE ov.__tid IS NULL AND ov.__live RETURNING *)";
  // A group that lost its last row disappears from the state too.
  if (!p.global() && groups.emptied) sql += ", gc AS (" + sql_agg_gc(p) + ")";
  std::vector<std::string> as_old, as_new;
  for (std::size_t i = 0; i < p.columns.size(); ++i) {
    as_old.push_back("o" + std::to_string(i) + " AS " + p.columns[i]);
    as_new.push_back("n" + std::to_string(i));
  }
  return sql + " SELECT " + join(as_old, ", ") + ", -1::int8 AS __m FROM upd UNION ALL SELECT " + join(as_new, ", ") +
         ", 1::int8 FROM upd" + (losing ? " UNION ALL SELECT del.*, -1::int8 FROM del" : "") +
         " UNION ALL SELECT ins.*, 1::int8 FROM ins";
}

std::string explain(const ViewPlan& p) {
  std::ostringstream o;
  o << "view " << p.name << "\n";
  if (p.aggregate) {
    o << (p.global() ? "Aggregate (global)" : "Aggregate") << "\n";
    for (std::size_t i = 0; i < p.groups.size(); ++i) o << "  group g" << i << ": " << p.groups[i] << "\n";
    static const char* kinds[] = {"count(*)", "count", "sum", "avg", "min", "max", "bool_and", "bool_or", "recompute"};
    for (std::size_t i = 0; i < p.aggs.size(); ++i) {
      const auto& a = p.aggs[i];
      o << "  a" << i << ": " << kinds[static_cast<int>(a.kind)];
      if (a.kind == AggKind::Recompute) o << " " << a.call << (a.distinct ? " distinct" : "");
      if (!a.arg.empty()) o << "(" << a.arg << ")";
      if (!a.filter.empty()) o << " filter " << a.filter;
      o << " state " << a.state_type;
      if (a.kind == AggKind::Min || a.kind == AggKind::Max)
        o << (p.extreme_counts ? ", rows holding the extreme counted" : ", recomputed when the extreme is deleted");
      o << "\n";
    }
    if (!p.having.empty()) o << "  having: " << p.having << "\n";
  } else {
    o << "Project\n";
    for (std::size_t i = 0; i < p.outputs.size(); ++i) o << "  " << p.columns[i] << " := " << p.outputs[i] << "\n";
  }
  if (!p.where.empty()) o << "Filter: " << p.where << "\n";
  std::function<void(int, int)> tree = [&](int n, int depth) {
    const JoinNode& j = p.joins[static_cast<std::size_t>(n)];
    std::string pad(static_cast<std::size_t>(depth) * 2, ' ');
    if (j.kind == JoinKind::Leaf) {
      const Leaf& l = leaf_of(p, j.leaf);
      o << pad << "Scan " << l.relation << " " << l.alias << (l.is_view ? " (ivm view)" : "");
      if (!l.key.empty()) o << " key " << l.key;
      o << "\n";
      return;
    }
    static const char* names[] = {"", "Inner Join", "Left Join", "Right Join", "Full Join"};
    o << pad << names[static_cast<int>(j.kind)] << " on " << (j.on.empty() ? "true" : j.on) << "\n";
    tree(j.left, depth + 1);
    tree(j.right, depth + 1);
  };
  tree(p.root, 0);
  o << "Maintenance: " << (p.outer ? "affected-key recompute over outer joins" : "linear delta rules")
    << (p.keylock.empty() ? "" : ", writers serialize per join key") << "\n";
  if (p.outer && p.view_key >= 0)
    o << "View key: " << p.columns[static_cast<std::size_t>(p.view_key)]
      << (p.unique_key ? ", at most one row per key (every input is unique on it)" : "") << "\n";
  if (!p.outer && p.unique_key)
    o << "View key: " << p.columns[static_cast<std::size_t>(p.locator)]
      << ", one row per key (a key of its input, never NULL)\n";
  o << "Delta steps for an INSERT into " << p.leaves[0].relation << ":\n";
  Changes c{{0, DeltaSource{"<inserted rows>", "", "", {}}}};
  std::string lock = sql_lock_keys(p, c);
  if (!lock.empty()) o << "  1. lock keys: " << lock << "\n";
  std::vector<int> key = keyed_columns(p);
  std::string rows = p.aggregate ? (key.empty() ? "" : sql_agg_upsert_rows(p, c)) : sql_spj_rows(p, c);
  if (!rows.empty()) {
    std::vector<std::string> cols;
    for (int k : key) cols.push_back(p.columns[static_cast<std::size_t>(k)]);
    if (p.aggregate && state_mergeable(p)) {
      if (foldable(p))
        o << "  2. per-group deltas, summed group by group from the change's rows: " << sql_agg_delta_rows(p, c)
          << "\n     (should a column's type not be the state's, computed instead by: " << sql_agg_deltas(p, c)
          << ")\n";
      else
        o << "  2. per-group deltas: " << sql_agg_deltas(p, c) << "\n";
      o << "  2a. merge the state rows by group: each found by the state's index on the group (a new group's row "
           "inserted as ON CONFLICT inserts), locked, merged and finalized in place (should a row go before it is "
           "locked, 2b instead)\n";
      o << "  2b. update state from the deltas of 2 (as " << kDeltasRelation
        << "), returning each changed group's view row: " << sql_agg_upsert_rows_from_deltas(p, c) << "\n";
    } else {
      o << "  2. "
        << (p.aggregate ? "update state, returning each changed group's view row: " : "rows of the changed keys: ")
        << rows << "\n";
    }
    o << "  3. write the view by key (" << join(cols, ", ")
      << "): each row found by the view's index on the key, then updated, inserted or deleted in place"
      << (p.aggregate && p.needs_recompute() ? "; with dirty groups, steps 4 and 5 instead" : "") << "\n";
    o << "  Instead of 2 and 3 under REPEATABLE READ or SERIALIZABLE, when the view's table has triggers of its "
         "users, or lacks that index:\n";
  }
  if (p.aggregate) {
    o << "  " << (rows.empty() ? "2" : "2'") << ". update state: " << sql_agg_upsert(p, c) << "\n";
    if (p.needs_recompute()) o << "  4. recompute dirty groups: " << sql_agg_recompute(p) << "\n";
    o << "  5. apply to view: " << sql_agg_apply(p, p.needs_recompute()) << "\n";
  } else {
    o << "  " << (rows.empty() ? "2" : "2'") << ". apply to view: " << sql_spj_apply(p, c, false) << "\n";
  }
  return o.str();
}

}  // namespace ivm::plan

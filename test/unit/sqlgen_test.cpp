// sqlgen_test.cpp: guards the delta rules that src/plan/sqlgen.cpp renders as
// SQL.  Plans are built by hand (no server, no analyzer) and the generated SQL
// is checked for the properties its correctness rests on: which relation each
// term reads, consolidation of updates, the telescoping sum over changed join
// leaves, affected-key recompute for outer joins, lock ordering, upsert
// conflict targets, MIN/MAX dirtiness, AVG finalization, storage DDL.  The
// checks are structural (substrings, occurrence counts, relative order), so
// they survive cosmetic changes but not semantic ones.
#include "plan/ir.hpp"
#include "plan/sqlgen.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace ivm::plan {
namespace {

// --- helpers -------------------------------------------------------------

std::size_t count(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + needle.size())) ++n;
  return n;
}

::testing::AssertionResult Has(const std::string& sql, const std::string& needle) {
  if (sql.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected to find\n  " << needle << "\nin\n  " << sql;
}

::testing::AssertionResult Lacks(const std::string& sql, const std::string& needle) {
  if (sql.find(needle) == std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "did not expect\n  " << needle << "\nin\n  " << sql;
}

// `first` occurs, and `second` occurs after it.
::testing::AssertionResult Before(const std::string& sql, const std::string& first, const std::string& second) {
  std::size_t a = sql.find(first);
  if (a == std::string::npos) return ::testing::AssertionFailure() << "missing\n  " << first << "\nin\n  " << sql;
  if (sql.find(second, a + first.size()) == std::string::npos)
    return ::testing::AssertionFailure() << "expected\n  " << second << "\nafter\n  " << first << "\nin\n  " << sql;
  return ::testing::AssertionSuccess();
}

// Either product order: the multiplicities of a term commute.
::testing::AssertionResult HasProduct(const std::string& sql, const std::string& a, const std::string& b) {
  const std::string ab = "(" + a + " * " + b + ")::int8 AS __m", ba = "(" + b + " * " + a + ")::int8 AS __m";
  if (sql.find(ab) != std::string::npos || sql.find(ba) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected the multiplicity\n  " << ab << "\nin\n  " << sql;
}

// The text from `from` (inclusive) to `to` (exclusive, or the end).
std::string slice(const std::string& sql, const std::string& from, const std::string& to = "") {
  std::size_t a = sql.find(from);
  if (a == std::string::npos) return "";
  std::size_t b = to.empty() ? std::string::npos : sql.find(to, a + from.size());
  return sql.substr(a, b == std::string::npos ? std::string::npos : b - a);
}

// Top-level terms of a linear body delta: each starts with "SELECT <expr0> AS c0".
std::vector<std::string> terms(const std::string& body, const std::string& first_expr) {
  const std::string start = "SELECT " + first_expr + " AS c0";
  std::vector<std::string> out;
  std::size_t pos = body.find(start);
  while (pos != std::string::npos) {
    std::size_t next = body.find(start, pos + start.size());
    out.push_back(body.substr(pos, next == std::string::npos ? std::string::npos : next - pos));
    pos = next;
  }
  return out;
}

Leaf make_leaf(const std::string& alias, const std::string& relation, std::uint32_t relid,
               std::vector<std::string> columns, const std::string& key = "") {
  Leaf l;
  l.alias = alias;
  l.relation = relation;
  l.relid = relid;
  l.columns = std::move(columns);
  l.key = key;
  return l;
}

JoinNode leaf_node(int leaf) {
  JoinNode j;
  j.kind = JoinKind::Leaf;
  j.leaf = leaf;
  return j;
}

JoinNode join_node(JoinKind kind, int left, int right, const std::string& on) {
  JoinNode j;
  j.kind = kind;
  j.left = left;
  j.right = right;
  j.on = on;
  return j;
}

Aggregate agg(AggKind kind, const std::string& arg, const std::string& state_type, const std::string& call = "",
              const std::string& filter = "") {
  Aggregate a;
  a.kind = kind;
  a.arg = arg;
  a.state_type = state_type;
  a.call = call;
  a.filter = filter;
  return a;
}

DeltaSource inserted(const std::string& rel) { return DeltaSource{rel, "", "", {}}; }
DeltaSource deleted(const std::string& rel) { return DeltaSource{"", rel, "", {}}; }
DeltaSource updated(const std::string& ins, const std::string& del) { return DeltaSource{ins, del, "", {}}; }
DeltaSource bag(const std::string& rel) { return DeltaSource{"", "", rel, {}}; }

// --- plans ---------------------------------------------------------------

// SELECT id, amount FROM orders WHERE amount > 0
ViewPlan spj_single() {
  ViewPlan p;
  p.name = "public.v_spj";
  p.oid = 20000;
  p.leaves = {make_leaf("l1", "public.orders", 16384, {"id", "amount"})};
  p.joins = {leaf_node(0)};
  p.root = 0;
  p.where = "l1.amount > 0";
  p.columns = {"id", "amount"};
  p.types = {"integer", "numeric"};
  p.locator = 0;
  p.outputs = {"l1.id", "l1.amount"};
  return p;
}

// SELECT c.name, o.amount FROM customers c JOIN orders o ON c.id = o.customer_id
ViewPlan inner_join() {
  ViewPlan p;
  p.name = "public.v_join";
  p.oid = 20001;
  p.keylock = "ivm_state.keylock_1";
  p.key_type = "integer";
  p.leaves = {make_leaf("l1", "public.customers", 16384, {"id", "name"}, "l1.id"),
              make_leaf("l2", "public.orders", 16390, {"customer_id", "amount"}, "l2.customer_id")};
  p.joins = {leaf_node(0), leaf_node(1), join_node(JoinKind::Inner, 0, 1, "l1.id = l2.customer_id")};
  p.root = 2;
  p.columns = {"name", "amount"};
  p.types = {"text", "numeric"};
  p.locator = 0;
  p.outputs = {"l1.name", "l2.amount"};
  return p;
}

// The same join as a LEFT JOIN: maintained by affected-key recompute.
ViewPlan left_join() {
  ViewPlan p = inner_join();
  p.name = "public.v_left";
  p.outer = true;
  p.joins[2].kind = JoinKind::Left;
  return p;
}

// SELECT e.id, b.id FROM emp e JOIN emp b ON e.boss = b.id
ViewPlan self_join() {
  ViewPlan p;
  p.name = "public.v_self";
  p.keylock = "ivm_state.keylock_2";
  p.key_type = "integer";
  p.leaves = {make_leaf("l1", "public.emp", 16400, {"id", "boss"}, "l1.boss"),
              make_leaf("l2", "public.emp", 16400, {"id", "boss"}, "l2.id")};
  p.joins = {leaf_node(0), leaf_node(1), join_node(JoinKind::Inner, 0, 1, "l1.boss = l2.id")};
  p.root = 2;
  p.columns = {"emp", "boss"};
  p.types = {"integer", "integer"};
  p.locator = 0;
  p.outputs = {"l1.id", "l2.id"};
  return p;
}

// SELECT region, count(*), sum(amount), avg(amount), min(price), max(price),
//        bool_and(ok), count(*) FILTER (WHERE amount > 100), avg(took)
//        [, count(DISTINCT customer)]
// FROM sales GROUP BY region
//
// Body columns: c0 region, c1..c5 the arguments of a1..a5, c6 the filter of
// a6, c7 the argument of a7, c8 the argument of a8.
ViewPlan grouped_agg(bool with_recompute) {
  ViewPlan p;
  p.name = "public.v_sales";
  p.oid = 20002;
  p.state = "ivm_state.state_1";
  p.leaves = {make_leaf("l1", "public.sales", 16500, {"region", "amount", "price", "ok", "customer", "took"})};
  p.joins = {leaf_node(0)};
  p.root = 0;
  p.aggregate = true;
  p.groups = {"l1.region"};
  p.group_types = {"text"};
  p.group_columns = {0};
  p.aggs = {
      agg(AggKind::CountStar, "", "bigint"),                         // a0
      agg(AggKind::Sum, "l1.amount", "numeric"),                     // a1
      agg(AggKind::Avg, "l1.amount", "numeric"),                     // a2
      agg(AggKind::Min, "l1.price", "integer", "pg_catalog.min"),    // a3
      agg(AggKind::Max, "l1.price", "integer", "pg_catalog.max"),    // a4
      agg(AggKind::BoolAnd, "l1.ok", "bigint"),                      // a5
      agg(AggKind::CountStar, "", "bigint", "", "l1.amount > 100"),  // a6
      agg(AggKind::Avg, "l1.took", "interval"),                      // a7
  };
  p.aggs[7].interval_avg = true;
  p.columns = {"region", "n", "total", "mean", "lo", "hi", "all_ok", "big", "mean_took"};
  p.types = {"text", "bigint", "numeric", "numeric", "integer", "integer", "boolean", "bigint", "interval"};
  p.finals = {"f.g0", "f.a0", "f.a1", "f.a2", "f.a3", "f.a4", "f.a5", "f.a6", "f.a7"};
  if (with_recompute) {
    Aggregate d = agg(AggKind::Recompute, "l1.customer", "bigint", "pg_catalog.count");  // a8
    d.distinct = true;
    p.aggs.push_back(d);
    p.columns.push_back("customers");
    p.types.push_back("bigint");
    p.finals.push_back("f.a8");
  }
  return p;
}

// SELECT count(*), sum(amount), count(note) FILTER (WHERE amount > 5),
//        min(amount) FILTER (WHERE amount > 5), bool_or(flag)
// FROM orders
//
// Body columns: c0 arg of a1, c1/c2 arg/filter of a2, c3/c4 arg/filter of a3,
// c5 arg of a4.
ViewPlan global_agg() {
  ViewPlan p;
  p.name = "public.v_total";
  p.oid = 20003;
  p.state = "ivm_state.state_2";
  p.leaves = {make_leaf("l1", "public.orders", 16384, {"amount", "note", "flag"})};
  p.joins = {leaf_node(0)};
  p.root = 0;
  p.aggregate = true;
  p.aggs = {
      agg(AggKind::CountStar, "", "bigint"),                                         // a0
      agg(AggKind::Sum, "l1.amount", "numeric"),                                     // a1
      agg(AggKind::Count, "l1.note", "bigint", "", "l1.amount > 5"),                 // a2
      agg(AggKind::Min, "l1.amount", "numeric", "pg_catalog.min", "l1.amount > 5"),  // a3
      agg(AggKind::BoolOr, "l1.flag", "bigint"),                                     // a4
  };
  p.columns = {"n", "total", "notes", "lo", "any_flag"};
  p.types = {"bigint", "numeric", "bigint", "numeric", "boolean"};
  p.finals = {"f.a0", "f.a1", "f.a2", "f.a3", "f.a4"};
  return p;
}

// SELECT region, year, count(*) FROM sales GROUP BY region, year
ViewPlan two_group_agg() {
  ViewPlan p;
  p.name = "public.v_ry";
  p.state = "ivm_state.state_3";
  p.leaves = {make_leaf("l1", "public.sales", 16500, {"region", "year"})};
  p.joins = {leaf_node(0)};
  p.root = 0;
  p.aggregate = true;
  p.groups = {"l1.region", "l1.year"};
  p.group_types = {"text", "integer"};
  p.group_columns = {0, 1};
  p.aggs = {agg(AggKind::CountStar, "", "bigint")};
  p.columns = {"region", "year", "n"};
  p.types = {"text", "integer", "bigint"};
  p.finals = {"f.g0", "f.g1", "f.a0"};
  return p;
}

// --- leaf deltas ---------------------------------------------------------

TEST(LeafDelta, InsertOnlyReadsOnlyInsertedRowsWithPlusOne) {
  const ViewPlan p = spj_single();
  const std::string sql = sql_leaf_delta(p, 0, inserted("ivm_new"));
  EXPECT_TRUE(Has(sql, "SELECT id, amount, 1::int8 AS __m FROM ivm_new"));
  EXPECT_EQ(1u, count(sql, "FROM "));
  EXPECT_TRUE(Lacks(sql, "public.orders"));
  EXPECT_TRUE(Lacks(sql, "UNION"));
  EXPECT_TRUE(Lacks(sql, "GROUP BY"));
}

TEST(LeafDelta, DeleteOnlyReadsOnlyDeletedRowsWithMinusOne) {
  const ViewPlan p = spj_single();
  const std::string sql = sql_leaf_delta(p, 0, deleted("ivm_old"));
  EXPECT_TRUE(Has(sql, "SELECT id, amount, -1::int8 AS __m FROM ivm_old"));
  EXPECT_EQ(1u, count(sql, "FROM "));
  EXPECT_TRUE(Lacks(sql, "public.orders"));
}

TEST(LeafDelta, UpdateConsolidatesInsertedAndDeleted) {
  const ViewPlan p = spj_single();
  const std::string sql = sql_leaf_delta(p, 0, updated("ivm_new", "ivm_old"));
  EXPECT_TRUE(Has(sql, "1 AS __m FROM ivm_new"));
  EXPECT_TRUE(Has(sql, "SELECT id, amount, -1 FROM ivm_old"));
  EXPECT_TRUE(Before(sql, "ivm_new", " UNION ALL "));
  // Rows the UPDATE did not change (in the columns the view reads) cancel.
  EXPECT_TRUE(Has(sql, "sum(__m)::int8 AS __m"));
  EXPECT_TRUE(Has(sql, "GROUP BY id, amount HAVING sum(__m) <> 0"));
}

TEST(LeafDelta, ViewBagIsConsolidated) {
  const ViewPlan p = spj_single();
  const std::string sql = sql_leaf_delta(p, 0, bag("ivm_bag"));
  EXPECT_TRUE(
      Has(sql, "SELECT id, amount, sum(__m)::int8 AS __m FROM ivm_bag GROUP BY id, amount HAVING sum(__m) <> 0"));
  EXPECT_TRUE(Lacks(sql, "UNION"));
}

TEST(LeafDelta, AnotherViewsChangeIsReadAsItIsUnlessAnAggregateReadsIt) {
  ViewPlan p = spj_single();
  p.leaves[0].is_view = true;
  EXPECT_EQ("SELECT id, amount, __m FROM ivm_bag", sql_leaf_delta(p, 0, bag("ivm_bag")));
  p.aggregate = true;
  EXPECT_TRUE(Has(sql_leaf_delta(p, 0, bag("ivm_bag")), "GROUP BY id, amount HAVING sum(__m) <> 0"));
}

// A deferred view's consumed delta table was consolidated on its columns: a leaf reading
// exactly those (in any order) reads it as it is; a leaf reading fewer must consolidate again
// (rows differing in a column it does not read cancel out in its projection).
TEST(LeafDelta, BagConsolidatedOnTheLeafsColumnsIsReadAsItIs) {
  ViewPlan p = spj_single();
  p.aggregate = true;
  plan::DeltaSource d = bag("ivm_bag");
  d.consolidated_on = {"amount", "id"};
  EXPECT_EQ("SELECT id, amount, __m FROM ivm_bag", sql_leaf_delta(p, 0, d));
  d.consolidated_on = {"amount", "id", "note"};
  EXPECT_TRUE(Has(sql_leaf_delta(p, 0, d), "GROUP BY id, amount HAVING sum(__m) <> 0"));
  d.consolidated_on = {"id"};
  EXPECT_TRUE(Has(sql_leaf_delta(p, 0, d), "GROUP BY id, amount HAVING sum(__m) <> 0"));
  // Nothing known of the bag: a leaf without columns still sums its rows into one.
  p.leaves[0].columns.clear();
  d.consolidated_on.clear();
  EXPECT_TRUE(Has(sql_leaf_delta(p, 0, d), "sum(__m)::int8 AS __m FROM ivm_bag HAVING sum(__m) <> 0"));
}

TEST(LeafDelta, LeafWithoutColumnsStillCountsRows) {
  ViewPlan p = spj_single();
  p.leaves[0].columns.clear();
  EXPECT_TRUE(Has(sql_leaf_delta(p, 0, inserted("ivm_new")), "SELECT 1::int8 AS __m FROM ivm_new"));
  const std::string upd = sql_leaf_delta(p, 0, updated("ivm_new", "ivm_old"));
  EXPECT_TRUE(Lacks(upd, "GROUP BY"));
  EXPECT_TRUE(Has(upd, "HAVING sum(__m) <> 0"));
}

// --- SPJ views -----------------------------------------------------------

TEST(SpjApply, SingleTableInsertIsOneTermOverTheInsertedRows) {
  const ViewPlan p = spj_single();
  const std::string body = sql_body_delta(p, {{0, inserted("ivm_new")}}, p.outputs);
  EXPECT_TRUE(Has(body,
                  "SELECT l1.id AS c0, l1.amount AS c1, l1.__m::int8 AS __m FROM "
                  "(SELECT id, amount, 1::int8 AS __m FROM ivm_new) l1 WHERE (l1.amount > 0)"));
  EXPECT_TRUE(Lacks(body, "public.orders"));
  EXPECT_TRUE(Lacks(body, "UNION"));
}

TEST(SpjApply, ConsolidatesAndUpdatesInPlacePerLocatorValue) {
  const ViewPlan p = spj_single();
  const std::string sql = sql_spj_apply(p, {{0, updated("ivm_new", "ivm_old")}}, false);
  EXPECT_TRUE(Has(sql, "WITH d AS (SELECT c0, c1, sum(__m)::int8 AS __m FROM ("));
  EXPECT_TRUE(Has(sql, ") ivm_b GROUP BY c0, c1 HAVING sum(__m) <> 0 ORDER BY c0)"));  // probes in index order
  // |__m| physical copies of each row with a negative net multiplicity are found ...
  EXPECT_TRUE(Has(
      sql, "gone AS (SELECT z.__tid, d.c0, d.c1 FROM d, LATERAL (SELECT v2.ctid AS __tid FROM public.v_spj v2 WHERE "));
  EXPECT_TRUE(
      Has(sql, "LIMIT (-d.__m) FOR UPDATE OF v2 SKIP LOCKED) z WHERE d.__m < 0 AND (d.c0 IS NOT NULL) UNION ALL "));
  EXPECT_TRUE(Has(sql, "ROW(v2.id, v2.amount) IS NOT DISTINCT FROM ROW(d.c0, d.c1)"));
  // ... through the locator column: by plain equality when the value is set,
  // NULL-safe in a second arm for the rest; __m copies of each positive one come.
  EXPECT_TRUE(Has(sql, "v2 WHERE v2.id = d.c0 AND ROW("));
  EXPECT_TRUE(Has(sql, "v2 WHERE (v2.id = d.c0 OR (v2.id IS NULL AND d.c0 IS NULL)) AND ROW("));
  EXPECT_TRUE(Has(sql, "WHERE d.__m < 0 AND NOT (d.c0 IS NOT NULL))"));
  // An exclusive maintainer takes no row locks.
  EXPECT_TRUE(Lacks(sql_spj_apply(p, {{0, updated("ivm_new", "ivm_old")}}, true), "FOR UPDATE"));
  EXPECT_TRUE(Has(sql,
                  "came AS (SELECT d.c0, d.c1, row_number() OVER (PARTITION BY d.c0) AS __rn FROM d, "
                  "generate_series(1, d.__m) WHERE d.__m > 0)"));
  // Removed and added rows pair up per locator value: pairs are updated in place,
  // the rest deleted or inserted.
  EXPECT_TRUE(Has(sql, "FROM gp FULL JOIN came ON gp.c0 = came.c0 AND gp.__rn = came.__rn)"));
  EXPECT_TRUE(
      Has(sql, "upd AS (UPDATE public.v_spj v SET (id, amount) = ROW(pr.c0, pr.c1) FROM pr WHERE v.ctid = pr.__tid"));
  EXPECT_TRUE(Has(sql, "del AS (DELETE FROM public.v_spj v USING pr WHERE v.ctid = pr.__tid"));
  EXPECT_TRUE(Has(sql, "NOT pr.__n RETURNING v.*)"));
  EXPECT_TRUE(
      Has(sql, "ins AS (INSERT INTO public.v_spj SELECT pr.c0, pr.c1 FROM pr WHERE pr.__tid IS NULL RETURNING *)"));
  // The change to the view is returned as a signed bag for views over it.
  EXPECT_TRUE(
      Has(sql, "SELECT o0 AS id, o1 AS amount, -1::int8 AS __m FROM upd UNION ALL SELECT n0, n1, 1::int8 FROM upd"));
  EXPECT_TRUE(Has(sql, "SELECT del.*, -1::int8 FROM del UNION ALL SELECT ins.*, 1::int8 FROM ins"));
}

TEST(SpjApply, UniqueLocatorFindsTheOldRowByItAlone) {
  ViewPlan p = spj_single();
  p.unique_key = true;
  const std::string sql = sql_spj_apply(p, {{0, inserted("ivm_new")}}, false);
  // The removed row is the view's row of its locator value (one probe, no
  // NULL-safe second arm); it meets the added row of the same value.  No row
  // numbers.
  EXPECT_TRUE(Has(sql, ", o AS (SELECT v.__tid, d.c0 AS o0"));
  EXPECT_TRUE(Has(
      sql,
      " FROM d, LATERAL (SELECT v.ctid AS __tid FROM public.v_spj v WHERE v.id = d.c0 LIMIT 1) v WHERE d.__m < 0)"));
  EXPECT_TRUE(Has(sql, " FROM o FULL JOIN (SELECT * FROM d WHERE d.__m > 0) n ON o.o0 = n.c0)"));
  EXPECT_EQ(1u, count(sql, "LATERAL"));
  EXPECT_TRUE(Lacks(sql, "row_number()"));
  EXPECT_TRUE(Lacks(sql, "SKIP LOCKED"));
}

TEST(KeyColumn, PlainColumnsOnly) {
  Leaf l = make_leaf("l2", "public.orders", 16390, {"customer_id"}, "l2.customer_id");
  EXPECT_EQ("customer_id", key_column(l));
  l.key = "l2.\"Cust \"\"Id\"\"\"";
  EXPECT_EQ("Cust \"Id\"", key_column(l));
  for (const char* k : {"(l2.customer_id)::bigint", "l2.customer_id + 1", "l1.customer_id", "l2.", "l2.\"a\"b\"",
                        "l2.\"a", "lower(l2.name)", "l2.Name"}) {
    l.key = k;
    EXPECT_EQ("", key_column(l)) << k;
  }
}

TEST(SpjRows, UniqueLocatorReturnsOneRowPerKey) {
  ViewPlan p = spj_single();
  EXPECT_TRUE(keyed_columns(p).empty());
  EXPECT_EQ("", sql_spj_rows(p, {{0, inserted("ivm_new")}}));
  p.unique_key = true;
  EXPECT_EQ(std::vector<int>{0}, keyed_columns(p));
  const std::string sql = sql_spj_rows(p, {{0, inserted("ivm_new")}});
  // Read-only; per locator value the added row (live) before the removed one.
  EXPECT_TRUE(Lacks(sql, "UPDATE"));
  EXPECT_TRUE(Lacks(sql, "DELETE"));
  EXPECT_TRUE(Lacks(sql, "INSERT"));
  EXPECT_TRUE(Has(sql, "WITH d AS (SELECT c0, c1, sum(__m)::int8 AS __m FROM ("));
  EXPECT_TRUE(Has(sql,
                  " HAVING sum(__m) <> 0 ORDER BY c0) SELECT DISTINCT ON (c0) __m, __m > 0 AS __live, c0, c1 "
                  "FROM d ORDER BY c0, __m DESC"));
  // The same consolidation as the SQL apply's.
  const std::string apply = sql_spj_apply(p, {{0, inserted("ivm_new")}}, false);
  EXPECT_EQ(apply.substr(0, apply.find(", o AS (")), sql.substr(0, sql.find(" SELECT DISTINCT ON")));
}

TEST(SpjRows, OuterJoinReturnsEveryAffectedKey) {
  ViewPlan p = left_join();
  p.view_key = 0;
  p.unique_key = true;
  p.types[0] = "integer";  // the key's type
  EXPECT_EQ(std::vector<int>{0}, keyed_columns(p));
  const std::string sql = sql_spj_rows(p, {{1, inserted("ivm_new")}});
  // A key without a recomputed row is not live; it still names its row.
  EXPECT_TRUE(Has(sql,
                  "SELECT n.__m IS NOT NULL AS __live, coalesce(n.c0, ivm_keys.k) AS c0, n.c1 FROM ivm_keys "
                  "LEFT JOIN n ON n.c0 = ivm_keys.k"));
  EXPECT_TRUE(Lacks(sql, "UPDATE"));
  // A change of the preserved leaf may bring rows with a NULL key: no key's.
  EXPECT_EQ("", sql_spj_rows(p, {{0, inserted("ivm_new")}}));
  // Keys of another type than the column's cannot name its rows.
  p.types[0] = "text";
  EXPECT_TRUE(keyed_columns(p).empty());
  EXPECT_EQ("", sql_spj_rows(p, {{1, inserted("ivm_new")}}));
}

TEST(SpjApply, WithoutLocatorMatchesWholeRows) {
  ViewPlan p = spj_single();
  p.locator = -1;
  const std::string sql = sql_spj_apply(p, {{0, deleted("ivm_old")}}, false);
  EXPECT_TRUE(Lacks(sql, "v2.id = d.c0"));
  EXPECT_TRUE(Has(sql, "ROW(v2.id, v2.amount) IS NOT DISTINCT FROM ROW(d.c0, d.c1)"));
  EXPECT_TRUE(Has(sql, "LIMIT (-d.__m) FOR UPDATE OF v2 SKIP LOCKED"));
  EXPECT_TRUE(Has(sql, "INSERT INTO public.v_spj SELECT d.c0, d.c1 FROM d, generate_series(1, d.__m) WHERE d.__m > 0"));
  EXPECT_TRUE(Lacks(sql, "upd AS"));
}

// --- inner joins: linear delta rules ------------------------------------

TEST(LinearJoin, OneChangedLeafJoinsItsDeltaWithTheOtherLeaf) {
  const ViewPlan p = inner_join();
  const std::string body = sql_body_delta(p, {{1, inserted("ivm_new")}}, p.outputs);
  EXPECT_EQ(1u, terms(body, "l1.name").size());
  EXPECT_TRUE(Has(body,
                  "(public.customers l1 JOIN (SELECT customer_id, amount, 1::int8 AS __m FROM ivm_new) l2 "
                  "ON l1.id = l2.customer_id)"));
  EXPECT_TRUE(Has(body, "l2.__m::int8 AS __m"));
  EXPECT_TRUE(Lacks(body, "UNION"));
  EXPECT_TRUE(Lacks(body, "-__m"));
  EXPECT_TRUE(Lacks(body, "public.orders"));
}

TEST(LinearJoin, TwoChangedLeavesTelescope) {
  const ViewPlan p = inner_join();
  const std::string body = sql_body_delta(p, {{0, inserted("ivm_new_c")}, {1, inserted("ivm_new_o")}}, p.outputs);
  const std::vector<std::string> t = terms(body, "l1.name");
  ASSERT_EQ(2u, t.size()) << body;
  // ΔL ⋈ R_old: the later leaf in its old state (now minus its delta).
  EXPECT_TRUE(Has(t[0], "(SELECT id, name, 1::int8 AS __m FROM ivm_new_c) l1"));
  EXPECT_TRUE(Has(t[0],
                  "(SELECT customer_id, amount, 1::int8 AS __m FROM public.orders UNION ALL "
                  "SELECT customer_id, amount, -__m FROM (SELECT customer_id, amount, 1::int8 AS __m "
                  "FROM ivm_new_o) ivm_old) l2"));
  EXPECT_TRUE(HasProduct(t[0], "l1.__m", "l2.__m"));
  // L_new ⋈ ΔR: the earlier leaf as it is now.
  EXPECT_TRUE(Has(t[1], "(public.customers l1 JOIN (SELECT customer_id, amount, 1::int8 AS __m FROM ivm_new_o) l2"));
  EXPECT_TRUE(Has(t[1], "l2.__m::int8 AS __m"));
  EXPECT_TRUE(Lacks(t[1], "-__m"));
  EXPECT_TRUE(Has(t[0] + t[1], " UNION ALL SELECT l1.name AS c0"));
}

TEST(LinearJoin, SelfJoinWithBothOccurrencesChangedUsesOldStateOnce) {
  const ViewPlan p = self_join();
  const DeltaSource d = updated("ivm_new", "ivm_old");
  const std::string body = sql_body_delta(p, {{0, d}, {1, d}}, p.outputs);
  const std::vector<std::string> t = terms(body, "l1.id");
  ASSERT_EQ(2u, t.size()) << body;
  // First term: Δl1 ⋈ l2_old, where l2_old = emp UNION ALL -Δ.
  EXPECT_EQ(1u, count(t[0], "-__m FROM ("));
  EXPECT_TRUE(Has(t[0], "SELECT id, boss, 1::int8 AS __m FROM public.emp UNION ALL SELECT id, boss, -__m FROM ("));
  EXPECT_TRUE(HasProduct(t[0], "l1.__m", "l2.__m"));
  // Second term: l1_new ⋈ Δl2, reading emp as it is now.
  EXPECT_EQ(0u, count(t[1], "-__m FROM ("));
  EXPECT_TRUE(Has(t[1],
                  "(public.emp l1 JOIN (SELECT id, boss, sum(__m)::int8 AS __m FROM (SELECT id, boss, 1 AS __m "
                  "FROM ivm_new UNION ALL SELECT id, boss, -1 FROM ivm_old) ivm_u GROUP BY id, boss "
                  "HAVING sum(__m) <> 0) l2 ON l1.boss = l2.id)"));
  EXPECT_TRUE(Has(t[1], "l2.__m::int8 AS __m"));
  // The two terms are summed.
  EXPECT_TRUE(Has(body, " UNION ALL SELECT l1.id AS c0"));
}

TEST(LinearJoin, WhereAppliesToEveryTerm) {
  ViewPlan p = inner_join();
  p.where = "l2.amount > 10";
  const std::string body = sql_body_delta(p, {{0, inserted("a")}, {1, inserted("b")}}, p.outputs);
  EXPECT_EQ(2u, count(body, "WHERE (l2.amount > 10)"));
}

TEST(LinearJoin, PopulateJoinsCurrentRelations) {
  const ViewPlan p = inner_join();
  const std::vector<std::string> sql = sql_populate(p).statements;
  ASSERT_EQ(1u, sql.size());
  EXPECT_TRUE(Has(sql[0],
                  "INSERT INTO public.v_join SELECT l1.name, l2.amount FROM "
                  "(public.customers l1 JOIN public.orders l2 ON l1.id = l2.customer_id)"));
}

// --- outer joins: affected-key recompute ---------------------------------

TEST(OuterJoin, OneChangedLeafRecomputesAffectedKeys) {
  const ViewPlan p = left_join();
  const std::string body = sql_body_delta(p, {{1, inserted("ivm_new")}}, p.outputs);
  // The affected keys come from the changed leaf's delta, without NULLs.
  EXPECT_EQ(0u, body.find("WITH ivm_keys AS (SELECT DISTINCT k FROM ("));
  EXPECT_TRUE(
      Has(body, "SELECT l2.customer_id AS k FROM (SELECT customer_id, amount, 1::int8 AS __m FROM ivm_new) l2"));
  EXPECT_TRUE(Has(body, "ivm_k WHERE k IS NOT NULL ORDER BY k)"));
  EXPECT_TRUE(Lacks(body, "SELECT l1.id AS k"));
  // New rows of those keys count +1, old rows -1.
  EXPECT_TRUE(Has(body, "1::int8 AS __m FROM ("));
  EXPECT_TRUE(Has(body, "-1::int8 AS __m FROM ("));
  // The preserved leaf is restricted to the affected keys, in both states; the
  // null-extended one is joined by key as it is now ...
  // (joined to the sorted keys, which drive the probes in key order).
  EXPECT_EQ(2u, count(body, "(SELECT l1.id, l1.name FROM ivm_keys JOIN public.customers l1 ON l1.id = ivm_keys.k)"));
  EXPECT_TRUE(Has(body, " LEFT JOIN public.orders l2 ON"));
  // The old state of the changed leaf: now EXCEPT ALL inserted, plus deleted.
  EXPECT_EQ(1u, count(body, "EXCEPT ALL"));
  EXPECT_TRUE(Has(body,
                  "FROM ivm_keys JOIN public.orders l2 ON l2.customer_id = ivm_keys.k EXCEPT ALL "
                  "SELECT customer_id, amount FROM ("));
  EXPECT_TRUE(Has(body, "generate_series(1, l2.__m) WHERE l2.__m > 0"));
  EXPECT_TRUE(Has(body, "generate_series(1, -l2.__m) WHERE l2.__m < 0 AND l2.customer_id IN (SELECT k FROM ivm_keys)"));
  // A row of the null-extended side with a NULL key matches nothing and never
  // reaches the view: no pass-through term for it.
  EXPECT_EQ(0u, count(body, "IS NULL)"));
  EXPECT_TRUE(Lacks(body, "WHERE false"));
  // The outer join itself is kept in both terms.
  EXPECT_EQ(2u, count(body, " LEFT JOIN "));
}

TEST(OuterJoin, EachChangedLeafGetsOldStatePreservedLeafNullKeysPassThrough) {
  const ViewPlan p = left_join();
  const std::string body =
      sql_body_delta(p, {{0, updated("ivm_new_c", "ivm_old_c")}, {1, deleted("ivm_old_o")}}, p.outputs);
  EXPECT_TRUE(Has(body, "SELECT l1.id AS k FROM ("));
  EXPECT_TRUE(Has(body, "SELECT l2.customer_id AS k FROM ("));
  EXPECT_TRUE(Before(body, "SELECT l1.id AS k FROM (", " UNION ALL SELECT l2.customer_id AS k FROM ("));
  EXPECT_EQ(2u, count(body, "EXCEPT ALL"));
  // Rows with a NULL key pass through linearly, against empty other leaves,
  // from the preserved leaf only.
  EXPECT_EQ(1u, count(body, "WHERE l1.id IS NULL) l1"));
  EXPECT_EQ(0u, count(body, "WHERE l2.customer_id IS NULL) l2"));
  EXPECT_EQ(1u, count(body, "WHERE false)"));
  EXPECT_TRUE(Has(body, "l1.__m FROM ((SELECT * FROM ("));
  EXPECT_TRUE(Has(body, " LEFT JOIN (SELECT customer_id, amount FROM public.orders WHERE false) l2"));
  EXPECT_TRUE(Lacks(body, "l2.__m FROM "));
  EXPECT_EQ(3u, count(body, " LEFT JOIN "));
  // The linear rules' old state (UNION ALL -__m) is not used for outer joins.
  EXPECT_TRUE(Lacks(body, "-__m FROM ("));
}

TEST(OuterJoin, SpjApplyConsolidatesTheRecomputedRows) {
  const ViewPlan p = left_join();
  const std::string sql = sql_spj_apply(p, {{0, inserted("ivm_new")}}, false);
  EXPECT_TRUE(Before(sql, "WITH d AS (", "WITH ivm_keys AS ("));
  EXPECT_TRUE(Has(sql, "GROUP BY c0, c1 HAVING sum(__m) <> 0"));
}

TEST(OuterJoin, KeyedViewReadsOldRowsWithTheirCtidsAndPairsPerKey) {
  ViewPlan p = left_join();
  p.view_key = 0;
  const std::string sql = sql_spj_apply(p, {{1, inserted("ivm_new")}}, false);
  EXPECT_TRUE(Before(sql, "WITH ivm_keys AS (", ", d AS ("));
  // Old rows come from the view with their ctids, new ones from the restricted join.
  EXPECT_TRUE(Has(sql, "array_agg(__tid) FILTER (WHERE __tid IS NOT NULL) AS __tids FROM (SELECT v.ctid, "));
  EXPECT_TRUE(Has(sql, "FROM ivm_keys JOIN public.v_left v ON v.name = ivm_keys.k UNION ALL SELECT NULL::tid, "));
  EXPECT_TRUE(Has(
      sql, "gone AS (SELECT d.__tids[i] AS __tid, d.c0, d.c1 FROM d, generate_series(1, -d.__m) i WHERE d.__m < 0)"));
  EXPECT_TRUE(Has(sql, "FULL JOIN came ON gp.c0 = came.c0 AND gp.__rn = came.__rn"));
  // No LATERAL search for keyed rows.  A change of the null-extended leaf
  // cannot bring rows with a NULL key: no bag for them.
  EXPECT_EQ(0u, count(sql, "LATERAL"));
  EXPECT_TRUE(Lacks(sql, "nk AS ("));
  EXPECT_TRUE(Lacks(sql, "zdel"));
  // A change of the preserved leaf can: its NULL-key rows go through as a bag
  // (two probe arms).
  const std::string preserved = sql_spj_apply(p, {{0, inserted("ivm_new")}}, false);
  EXPECT_EQ(2u, count(preserved, "LATERAL"));
  EXPECT_TRUE(Has(preserved, "nk AS (SELECT c0, c1, sum(__m)::int8 AS __m FROM ("));
  EXPECT_TRUE(
      Has(preserved, " UNION ALL SELECT zdel.*, -1::int8 FROM zdel UNION ALL SELECT zins.*, 1::int8 FROM zins"));
}

TEST(OuterJoin, UniqueKeyJoinsOldAndNewRowsOnTheKey) {
  ViewPlan p = left_join();
  p.view_key = 0;
  p.unique_key = true;
  const std::string sql = sql_spj_apply(p, {{1, inserted("ivm_new")}}, false);
  // One old row (with its ctid) and one new row per key, joined on the key:
  // no consolidation over every column, no pairing by row number.
  EXPECT_TRUE(Has(sql,
                  "o AS (SELECT v.ctid AS __tid, v.name AS o0, v.amount AS o1 FROM ivm_keys JOIN public.v_left v ON "
                  "v.name = ivm_keys.k)"));
  EXPECT_TRUE(Has(sql,
                  "FROM o FULL JOIN n ON o.o0 = n.c0 WHERE o.__tid IS NULL OR n.__m IS NULL OR ROW(o.o0, o.o1) IS "
                  "DISTINCT FROM ROW(n.c0, n.c1)"));
  EXPECT_TRUE(Lacks(sql, "GROUP BY"));
  EXPECT_TRUE(Lacks(sql, "row_number()"));
  EXPECT_TRUE(Before(sql, "pr AS (", "upd AS (UPDATE public.v_left v SET"));
  // NULL keys still go through as a bag when the preserved leaf changes.
  EXPECT_TRUE(Has(sql_spj_apply(p, {{0, inserted("ivm_new")}}, false), "nk AS ("));
}

TEST(OuterJoin, OnlyAnchoredLeavesAreRestricted) {
  // customers LEFT JOIN orders: customers carry every row, orders are found by key.
  const ViewPlan p = left_join();
  const std::string body = sql_body_delta(p, {{0, inserted("ivm_new")}}, p.outputs);
  EXPECT_TRUE(Has(body, "FROM ivm_keys JOIN public.customers l1 ON l1.id = ivm_keys.k"));
  EXPECT_TRUE(Has(body, " LEFT JOIN public.orders l2 ON"));
  EXPECT_TRUE(Lacks(body, "FROM public.orders l2 WHERE"));
}

// --- key locks -----------------------------------------------------------

TEST(LockKeys, EmptyWithoutKeylock) {
  const ViewPlan single = spj_single();
  EXPECT_EQ("", sql_lock_keys(single, {{0, inserted("ivm_new")}}));
  ViewPlan join = inner_join();
  join.keylock.clear();
  EXPECT_EQ("", sql_lock_keys(join, {{0, inserted("a")}, {1, inserted("b")}}));
}

TEST(LockKeys, SortedUpsertOfTheChangedLeavesKeys) {
  const ViewPlan p = inner_join();
  const std::string sql = sql_lock_keys(p, {{1, inserted("ivm_new")}});
  EXPECT_TRUE(Has(sql, "INSERT INTO ivm_state.keylock_1 (k) SELECT DISTINCT k FROM ("));
  EXPECT_TRUE(Has(sql,
                  "SELECT (l2.customer_id)::integer AS k FROM (SELECT customer_id, amount, 1::int8 AS __m "
                  "FROM ivm_new) l2"));
  EXPECT_TRUE(Lacks(sql, "l1.id"));
  EXPECT_TRUE(Has(sql, "WHERE k IS NOT NULL"));
  // Sorted, so concurrent writers queue instead of deadlocking; an upsert,
  // so that a concurrent writer of the same key conflicts.
  EXPECT_TRUE(Before(sql, " ORDER BY k", " ON CONFLICT (k) DO UPDATE SET k = EXCLUDED.k"));
  EXPECT_TRUE(Lacks(sql, "true AS k"));
}

TEST(LockKeys, BothChangedLeavesContributeKeys) {
  const ViewPlan p = inner_join();
  const std::string sql = sql_lock_keys(p, {{0, deleted("ivm_old_c")}, {1, inserted("ivm_new_o")}});
  EXPECT_EQ(2u, count(sql, "::integer AS k FROM ("));
  EXPECT_TRUE(Has(sql, "(l1.id)::integer AS k FROM (SELECT id, name, -1::int8 AS __m FROM ivm_old_c) l1"));
  EXPECT_TRUE(Has(sql, " UNION ALL SELECT (l2.customer_id)::integer AS k"));
  EXPECT_TRUE(Has(sql, "ORDER BY k ON CONFLICT (k)"));
}

TEST(LockKeys, WithoutLeafKeysTheWholeViewLocksOnTrue) {
  ViewPlan p = inner_join();
  for (auto& l : p.leaves) l.key.clear();
  p.key_type = "boolean";
  const std::string sql = sql_lock_keys(p, {{0, inserted("ivm_new")}});
  EXPECT_TRUE(Has(sql, "INSERT INTO ivm_state.keylock_1 (k)"));
  EXPECT_TRUE(Has(sql, "(SELECT true AS k)"));
  EXPECT_TRUE(Lacks(sql, "__m"));
  EXPECT_TRUE(Lacks(sql, "ivm_new"));
  EXPECT_TRUE(Has(sql, "ORDER BY k ON CONFLICT (k) DO UPDATE"));
}

// --- aggregates: state upsert --------------------------------------------

TEST(AggUpsert, GroupedAlgebraicDeltas) {
  const ViewPlan p = grouped_agg(true);
  const std::string sql = sql_agg_upsert(p, {{0, inserted("ivm_new")}});
  const std::string gd = slice(sql, "gd AS (", ", mm3 AS (");
  ASSERT_FALSE(gd.empty()) << sql;
  // __g: the group as one composite value, so per-group CTEs join by hash or merge.
  EXPECT_TRUE(Has(gd, "SELECT c0, ROW(c0) AS __g, sum(__m)::int8 AS __cnt"));
  EXPECT_TRUE(Has(gd, " FROM d GROUP BY c0)"));
  // COUNT(*): the sum of multiplicities; with FILTER, of the filtered rows.
  EXPECT_TRUE(Has(gd, "coalesce(sum(__m), 0)::int8 AS a0"));
  EXPECT_TRUE(Has(gd, "coalesce(sum(__m) FILTER (WHERE c6), 0)::int8 AS a6"));
  // SUM/AVG: the signed sum, and the count of non-NULL inputs.
  EXPECT_TRUE(Has(gd, "sum((c1)::numeric * __m) AS a1"));
  EXPECT_TRUE(Has(gd, "coalesce(sum(__m) FILTER (WHERE c1 IS NOT NULL), 0)::int8 AS n1"));
  EXPECT_TRUE(Has(gd, "sum((c2)::numeric * __m) AS a2"));
  EXPECT_TRUE(Has(gd, "sum((c7)::interval * __m) AS a7"));
  // BOOL_AND: true inputs and non-NULL inputs.
  EXPECT_TRUE(Has(gd, "coalesce(sum(__m) FILTER (WHERE c5), 0)::int8 AS a5"));
  EXPECT_TRUE(Has(gd, "coalesce(sum(__m) FILTER (WHERE c5 IS NOT NULL), 0)::int8 AS n5"));
  // COUNT(DISTINCT) has no algebraic state.
  EXPECT_TRUE(Lacks(sql, "AS a8"));
  EXPECT_TRUE(Lacks(slice(sql, " INSERT INTO ", " SELECT "), "a8"));
  // Updates add the deltas to the stored state.
  EXPECT_TRUE(Has(sql, "__cnt = s.__cnt + EXCLUDED.__cnt"));
  EXPECT_TRUE(Has(sql, "a0 = s.a0 + EXCLUDED.a0"));
  EXPECT_TRUE(Has(sql, "n1 = s.n1 + EXCLUDED.n1"));
  EXPECT_TRUE(Has(
      sql, "a1 = CASE WHEN s.n1 + EXCLUDED.n1 = 0 THEN NULL ELSE coalesce(s.a1 + EXCLUDED.a1, s.a1, EXCLUDED.a1) END"));
  EXPECT_TRUE(Has(sql, "a5 = s.a5 + EXCLUDED.a5"));
}

TEST(AggUpsert, GroupedUpsertIsSortedByGroupAndConflictsOnGroup) {
  const ViewPlan p = grouped_agg(false);
  const std::string sql = sql_agg_upsert(p, {{0, updated("ivm_new", "ivm_old")}});
  EXPECT_TRUE(Has(sql, "INSERT INTO ivm_state.state_1 AS s (g0, __cnt, "));
  EXPECT_TRUE(Has(sql, "SELECT gd.c0, gd.__cnt, "));
  EXPECT_TRUE(Has(sql, "WHERE gd.__cnt IS NOT NULL"));
  EXPECT_TRUE(Has(sql, " ORDER BY gd.c0 ON CONFLICT (g0) DO UPDATE SET "));
  EXPECT_TRUE(Has(sql, " RETURNING s.*"));
}

TEST(AggUpsert, SeveralGroupColumns) {
  const ViewPlan p = two_group_agg();
  const std::string sql = sql_agg_upsert(p, {{0, inserted("ivm_new")}});
  EXPECT_TRUE(Has(sql, "GROUP BY c0, c1)"));
  EXPECT_TRUE(Has(sql, " ORDER BY gd.c0, gd.c1 ON CONFLICT (g0, g1) DO UPDATE"));
  EXPECT_TRUE(Has(sql, "RETURNING s.*"));
}

TEST(AggUpsert, MinMaxKeepTheirExtremeWhileSomeRowHoldsIt) {
  const ViewPlan p = grouped_agg(false);
  const std::string sql = sql_agg_upsert(p, {{0, updated("ivm_new", "ivm_old")}});
  // Net change per (group, value): an UPDATE that keeps the value is no delete.
  EXPECT_TRUE(Has(sql, "FROM (SELECT c0, c3 AS v, sum(__m) AS s FROM d WHERE c3 IS NOT NULL GROUP BY c0, c3) x"));
  // Per group, the extreme added value and the extreme removed one, with their
  // numbers of rows (ascending for MIN, descending for MAX).
  EXPECT_TRUE(Has(sql, "SELECT DISTINCT ON (c0, s > 0) c0, s > 0 AS pos, v, s FROM "));
  EXPECT_TRUE(Has(sql, " WHERE s <> 0 ORDER BY c0, s > 0, v) y"));
  EXPECT_TRUE(Has(sql, " WHERE s <> 0 ORDER BY c0, s > 0, v DESC) y"));
  EXPECT_TRUE(
      Has(sql,
          "mm3 AS (SELECT c0, ROW(c0) AS __g, min(v) FILTER (WHERE NOT pos) AS del, -sum(s) FILTER (WHERE NOT pos) "
          "AS delc, min(v) FILTER (WHERE pos) AS ins, sum(s) FILTER (WHERE pos) AS insc FROM "));
  EXPECT_TRUE(Has(sql, "mm4 AS (SELECT c0, ROW(c0) AS __g, max(v) FILTER (WHERE NOT pos) AS del"));
  // Joined on the composite group value: NULL groups match, and large batches hash.
  EXPECT_TRUE(Has(sql, "LEFT JOIN mm3 ON gd.__g = mm3.__g"));
  // The extreme is lost when every row holding it goes (or their number is
  // not known); a value beyond it becomes the new extreme in any case.
  const std::string lost_min =
      "(EXCLUDED.d3 IS NOT NULL AND (s.a3 IS NULL OR EXCLUDED.d3 < s.a3 OR (EXCLUDED.d3 = s.a3 "
      "AND (s.x3 IS NULL OR s.x3 <= EXCLUDED.dc3))))";
  const std::string lost_max =
      "(EXCLUDED.d4 IS NOT NULL AND (s.a4 IS NULL OR EXCLUDED.d4 > s.a4 OR (EXCLUDED.d4 = s.a4 "
      "AND (s.x4 IS NULL OR s.x4 <= EXCLUDED.dc4))))";
  const std::string further_min = "coalesce(EXCLUDED.a3 < s.a3, false)";
  EXPECT_TRUE(Has(sql, "a3 = CASE WHEN " + further_min + " THEN EXCLUDED.a3 WHEN " + lost_min +
                           " THEN NULL ELSE coalesce(s.a3, EXCLUDED.a3) END"));
  EXPECT_TRUE(Has(sql, "a4 = CASE WHEN coalesce(EXCLUDED.a4 > s.a4, false) THEN EXCLUDED.a4 WHEN " + lost_max));
  // The count follows: new extreme -> its rows; removed copies -> minus; equal
  // additions -> plus.
  EXPECT_TRUE(
      Has(sql, "x3 = CASE WHEN " + further_min + " THEN EXCLUDED.x3 WHEN " + lost_min +
                   " THEN NULL WHEN s.a3 IS NULL THEN EXCLUDED.x3 ELSE s.x3 - CASE WHEN EXCLUDED.d3 = s.a3 THEN "
                   "EXCLUDED.dc3 ELSE 0 END + CASE WHEN EXCLUDED.a3 = s.a3 THEN EXCLUDED.x3 ELSE 0 END END"));
  const std::string dirty = slice(sql, "__dirty = (s.__dirty OR ", " RETURNING ");
  ASSERT_FALSE(dirty.empty()) << sql;
  EXPECT_TRUE(Has(dirty, "(" + lost_min + " AND NOT " + further_min + ")"));
  EXPECT_TRUE(Has(dirty, lost_max));
  // The removed extreme and its count are carried in d<i>/dc<i>, cleared once used.
  EXPECT_TRUE(Has(sql, "mm3.ins, mm3.insc, mm3.del, mm3.delc"));
  EXPECT_TRUE(Has(sql, "d3 = NULL, dc3 = NULL"));
  // A new group is dirty when it already lost values.
  EXPECT_TRUE(Has(sql, "(mm3.del IS NOT NULL OR mm4.del IS NOT NULL)"));
}

// Plans stored before format 3 have no count columns: their extremes are
// lost whenever the removed value reaches them, as then.
TEST(AggUpsert, MinMaxWithoutCountsLoseTheirExtremeWhenTheDeletedValueReachesIt) {
  ViewPlan p = grouped_agg(false);
  p.extreme_counts = false;
  const std::string sql = sql_agg_upsert(p, {{0, updated("ivm_new", "ivm_old")}});
  EXPECT_TRUE(
      Has(sql,
          "mm3 AS (SELECT c0, ROW(c0) AS __g, min(v) FILTER (WHERE s < 0) AS del, min(v) FILTER (WHERE s > 0) AS ins "
          "FROM (SELECT c0, c3 AS v, sum(__m) AS s FROM d WHERE c3 IS NOT NULL GROUP BY c0, c3) x GROUP BY c0)"));
  const std::string lost_min = "(EXCLUDED.d3 IS NOT NULL AND (s.a3 IS NULL OR EXCLUDED.d3 <= s.a3))";
  EXPECT_TRUE(Has(sql, "a3 = CASE WHEN " + lost_min + " THEN NULL ELSE LEAST(s.a3, EXCLUDED.a3) END"));
  EXPECT_TRUE(Lacks(sql, "x3"));
  EXPECT_TRUE(Lacks(sql, "dc3"));
  EXPECT_TRUE(Lacks(sql_agg_recompute(p), "x3"));
}

TEST(AggUpsert, RecomputeMarksEveryTouchedGroupDirty) {
  const ViewPlan p = grouped_agg(true);
  const std::string sql = sql_agg_upsert(p, {{0, inserted("ivm_new")}});
  EXPECT_TRUE(Has(sql, "__dirty = true RETURNING"));
  EXPECT_TRUE(Has(sql, ", true FROM gd"));
  EXPECT_TRUE(Lacks(sql, "__dirty = (s.__dirty"));
}

TEST(AggUpsert, AlgebraicOnlyNeverDirty) {
  const ViewPlan p = two_group_agg();
  const std::string sql = sql_agg_upsert(p, {{0, deleted("ivm_old")}});
  EXPECT_TRUE(Has(sql, "__dirty = s.__dirty RETURNING"));
  EXPECT_TRUE(Has(sql, ", false FROM gd"));
}

TEST(AggUpsert, GlobalConflictsOnTheSingleKeyAndHasNoGroupBy) {
  const ViewPlan p = global_agg();
  const std::string sql = sql_agg_upsert(p, {{0, inserted("ivm_new")}});
  EXPECT_TRUE(Has(sql, "INSERT INTO ivm_state.state_2 AS s (__k, __cnt, "));
  EXPECT_TRUE(Has(sql, "SELECT true, gd.__cnt, "));
  EXPECT_TRUE(Has(sql, "WHERE gd.__cnt IS NOT NULL"));
  EXPECT_TRUE(Has(sql, " ON CONFLICT (__k) DO UPDATE SET "));
  EXPECT_TRUE(Has(sql, "RETURNING s.*"));
  EXPECT_TRUE(Lacks(sql, "ORDER BY gd."));
  EXPECT_TRUE(Has(slice(sql, "gd AS (", ", mm3 AS ("), "FROM d)"));
  // Only the MIN's value-level consolidation groups (by value alone).
  EXPECT_EQ(1u, count(sql, "GROUP BY"));
  EXPECT_TRUE(Has(sql, "FROM d WHERE c4 AND c3 IS NOT NULL GROUP BY c3) x WHERE s <> 0 ORDER BY s > 0, v) y)"));
  EXPECT_TRUE(Has(sql, "LEFT JOIN mm3 ON true"));
  // COUNT(x) FILTER counts non-NULL filtered inputs; BOOL_OR counts true ones.
  EXPECT_TRUE(Has(sql, "coalesce(sum(__m) FILTER (WHERE c2 AND c1 IS NOT NULL), 0)::int8 AS a2"));
  EXPECT_TRUE(Has(sql, "coalesce(sum(__m) FILTER (WHERE c5), 0)::int8 AS a4"));
  EXPECT_TRUE(Has(sql, "coalesce(sum(__m) FILTER (WHERE c5 IS NOT NULL), 0)::int8 AS n4"));
}

TEST(AggUpsert, JoinBodyUsesTheLinearDelta) {
  ViewPlan p = two_group_agg();
  const ViewPlan j = inner_join();
  p.leaves = j.leaves;
  p.joins = j.joins;
  p.root = j.root;
  p.groups = {"l1.name", "l2.amount"};
  const std::string sql = sql_agg_upsert(p, {{0, inserted("a")}, {1, inserted("b")}});
  EXPECT_EQ(2u, terms(sql, "l1.name").size());
  EXPECT_TRUE(HasProduct(sql, "l1.__m", "l2.__m"));
}

// --- aggregates: recompute and apply -------------------------------------

TEST(AggRecompute, RecomputesOnlyNonAlgebraicAggregatesOfDirtyGroups) {
  const ViewPlan p = grouped_agg(true);
  const std::string sql = sql_agg_recompute(p);
  EXPECT_EQ(0u, sql.find("WITH rc AS (WITH b AS MATERIALIZED (SELECT "));
  EXPECT_TRUE(Has(sql, ") UPDATE ivm_state.state_1 s SET "));
  EXPECT_TRUE(Has(sql, "a3 = r.a3"));
  EXPECT_TRUE(Has(sql, "a4 = r.a4"));
  EXPECT_TRUE(Has(sql, "a8 = r.a8"));
  EXPECT_TRUE(Has(sql, "__dirty = false"));
  for (const char* algebraic : {"a0 = r.", "a1 = r.", "a2 = r.", "a5 = r.", "a6 = r.", "a7 = r."})
    EXPECT_TRUE(Lacks(sql, algebraic));
  // Extremes with their counts: per group, the first value in order, counted.
  EXPECT_TRUE(Has(sql, "x3 = r.x3"));
  EXPECT_TRUE(Has(sql, "x4 = r.x4"));
  EXPECT_TRUE(
      Has(sql,
          ", e3 AS (SELECT DISTINCT ON (b.c0) ROW(b.c0) AS __g, b.c3 AS v, count(*) AS x FROM b WHERE b.c3 IS NOT NULL "
          "GROUP BY b.c0, b.c3 ORDER BY b.c0, b.c3)"));
  EXPECT_TRUE(Has(sql, "ORDER BY b.c0, b.c4 DESC)"));
  EXPECT_TRUE(Has(sql,
                  "SELECT r0.*, e3.v AS a3, e3.x AS x3, e4.v AS a4, e4.x AS x4 FROM r0 LEFT JOIN e3 ON r0.__g = e3.__g "
                  "LEFT JOIN e4 ON r0.__g = e4.__g), r AS ("));
  EXPECT_TRUE(Has(sql, "pg_catalog.count(DISTINCT b.c8) AS a8"));
  EXPECT_TRUE(
      Has(sql, "r0 AS (SELECT b.c0, pg_catalog.count(DISTINCT b.c8) AS a8, ROW(b.c0) AS __g FROM b GROUP BY b.c0)"));
  // The dirty groups' rows are read once.
  EXPECT_TRUE(Has(sql, "WITH b AS MATERIALIZED (SELECT "));
  // Each recomputed group finds its state row by one probe of the group index
  // (a NULL-safe join would be a nested loop over all dirty groups, quadratic
  // for a bulk DELETE); the UPDATE reaches those rows by ctid.
  EXPECT_TRUE(Has(sql,
                  "JOIN LATERAL (SELECT s.ctid FROM ivm_state.state_1 s WHERE s.g0 = rc.c0 LIMIT 1) w ON true "
                  "WHERE (rc.c0 IS NOT NULL) UNION ALL "));
  EXPECT_TRUE(Has(
      sql,
      "WHERE (s.g0 = rc.c0 OR (s.g0 IS NULL AND rc.c0 IS NULL)) LIMIT 1) w ON true WHERE NOT (rc.c0 IS NOT NULL))"));
  EXPECT_TRUE(Has(sql,
                  "FROM r WHERE s.ctid = r.__tid AND s.ctid = ANY (ARRAY(SELECT r.__tid FROM r WHERE true)) AND true "
                  "AND s.__dirty"));
  EXPECT_TRUE(Lacks(sql, "WHERE s.__dirty AND (s.g0 = r.c0"));
  // Dirty groups are found by value (index friendly) ...
  EXPECT_TRUE(Has(sql, "((l1.region) IN (SELECT g0 FROM ivm_groups WHERE __dirty))"));
  // ... and groups with a NULL key behind a gate.
  EXPECT_TRUE(Has(sql, "EXISTS (SELECT 1 FROM ivm_groups WHERE __dirty AND (g0 IS NULL))"));
  EXPECT_TRUE(Has(sql, "ROW(g0) IS NOT DISTINCT FROM ROW(l1.region)"));
}

TEST(AggRecompute, KeepsTheViewWhereInBothBranches) {
  ViewPlan p = grouped_agg(true);
  p.where = "l1.amount > 0";
  const std::string sql = sql_agg_recompute(p);
  EXPECT_EQ(2u, count(sql, "WHERE ((l1.amount > 0) AND "));
}

TEST(AggRecompute, GlobalRecomputesTheSingleRowWhenDirty) {
  const ViewPlan p = global_agg();
  const std::string sql = sql_agg_recompute(p);
  EXPECT_TRUE(Has(sql, "UPDATE ivm_state.state_2 s SET a3 = r.a3, x3 = r.x3, __dirty = false"));
  EXPECT_TRUE(Has(sql,
                  "e3 AS (SELECT b.c3 AS v, count(*) AS x FROM b WHERE b.c4 AND b.c3 IS NOT NULL GROUP BY b.c3 ORDER "
                  "BY b.c3 LIMIT 1)"));
  EXPECT_TRUE(Has(sql, "WHERE EXISTS (SELECT 1 FROM ivm_groups WHERE __dirty)"));
  // One row for the single group, whether or not any value is left.
  EXPECT_TRUE(Has(sql, "r0 AS (SELECT count(*) AS __rows FROM b)"));
  EXPECT_TRUE(Has(sql, "LEFT JOIN e3 ON true"));
  EXPECT_EQ(1u, count(sql, "GROUP BY"));
  EXPECT_TRUE(Has(sql, "LEFT JOIN e3 ON true) r WHERE s.__dirty"));
  EXPECT_TRUE(Lacks(sql, "ctid"));
}

// Regression (fixed in fc816a0): the body rows of the dirty groups are read
// in two UNION ALL arms, "group IN (dirty groups)" and, when some dirty group
// has a NULL key, "ROW(dirty group) IS NOT DISTINCT FROM ROW(group)".  The
// second arm used to match the non-NULL dirty groups the first one had
// already read, so when a NULL group and a non-NULL group were dirty in the
// same statement, the non-NULL group's rows were aggregated twice: invisible
// for MIN/MAX and COUNT/SUM(DISTINCT), but sum(float8)/avg(float8) doubled.
// On PostgreSQL 15 with the extension:
//   CREATE TABLE t (g text, x float8);
//   INSERT INTO t VALUES ('a', 1.5), ('a', 2.5), (NULL, 10);
//   SELECT ivm.create_view('v', 'SELECT g, sum(x) AS s FROM t GROUP BY g');
//   INSERT INTO t VALUES ('a', 1), (NULL, 1);
//   -- v had ('a', 10) instead of ('a', 5).
// The NULL-key arm must only read rows whose own group key has a NULL.
std::pair<std::string, std::string> recompute_arms(const ViewPlan& p) {
  const std::string sql = sql_agg_recompute(p);
  // With MIN/MAX counts the rows are a CTE b shared by r0 and e<i>.
  std::string rows = slice(sql, "b AS MATERIALIZED (SELECT ", "), r0 AS (");
  if (rows.empty()) rows = slice(sql, "FROM (SELECT ", ") b GROUP BY");
  const std::size_t split = rows.find(" UNION ALL ");
  if (split == std::string::npos) return {sql, ""};
  return {rows.substr(0, split), rows.substr(split)};
}

// Any of these spellings tests whether `expr` (a group expression) is NULL.
bool tests_null(const std::string& sql, const std::string& expr) {
  return sql.find(expr + " IS NULL") != std::string::npos || sql.find("(" + expr + ") IS NULL") != std::string::npos;
}

TEST(AggRecompute, NullKeyArmDoesNotRereadNonNullGroups) {
  const auto [by_value, null_arm] = recompute_arms(grouped_agg(true));
  ASSERT_FALSE(null_arm.empty()) << by_value;
  EXPECT_TRUE(tests_null(null_arm, "l1.region")) << "the NULL-key arm re-reads non-NULL dirty groups:\n  " << null_arm;
  EXPECT_FALSE(tests_null(by_value, "l1.region")) << by_value;
}

TEST(AggRecompute, NullKeyArmTakesRowsWithAnyNullGroupColumn) {
  const auto [by_value, null_arm] = recompute_arms(two_group_agg());
  ASSERT_FALSE(null_arm.empty()) << by_value;
  EXPECT_TRUE(Has(by_value, "(l1.region, l1.year) IN (SELECT g0, g1 FROM ivm_groups WHERE __dirty)"));
  // (NULL, 2020) is a NULL-keyed group too: either column may be the NULL one.
  EXPECT_TRUE(tests_null(null_arm, "l1.region")) << null_arm;
  EXPECT_TRUE(tests_null(null_arm, "l1.year")) << null_arm;
  const bool any = null_arm.find("(l1.region) IS NULL OR (l1.year) IS NULL") != std::string::npos ||
                   null_arm.find("l1.region IS NULL OR l1.year IS NULL") != std::string::npos;
  EXPECT_TRUE(any) << "rows must be taken when any group column is NULL:\n  " << null_arm;
  EXPECT_TRUE(Has(null_arm, "ROW(g0, g1) IS NOT DISTINCT FROM ROW(l1.region, l1.year)"));
}

TEST(AggApply, GroupedUpdatesInPlaceAndAddsOrRemovesGroups) {
  const ViewPlan p = grouped_agg(true);
  const std::string sql = sql_agg_apply(p, false);
  // f: the state rows the upsert returned, finalized; the state table is not read again.
  EXPECT_TRUE(Has(sql, "WITH f AS (SELECT s.g0, "));
  EXPECT_TRUE(Has(sql, " FROM ivm_groups s)"));
  EXPECT_TRUE(Lacks(sql, "FROM ivm_state.state_1 s JOIN"));
  // ov: whether each group has an output row, its values (computed only then),
  // and the view's row, found by one NULL-safe probe on the group column.
  EXPECT_TRUE(
      Has(sql, "ov AS (SELECT w.ctid AS __tid, f.__live, w.region AS o0, CASE WHEN f.__live THEN f.g0 END AS c0, "));
  // One probe per group (LIMIT 1: a group has at most one row), never a join
  // reading the whole view.
  EXPECT_TRUE(Has(sql,
                  "FROM (SELECT f.*, coalesce((f.__cnt > 0), false) AS __live FROM f) f LEFT JOIN LATERAL "
                  "(SELECT w.ctid, w.region, w.n, w.total, "));
  EXPECT_TRUE(Has(
      sql,
      " FROM public.v_sales w WHERE w.region = f.g0 LIMIT 1) w ON true WHERE (f.g0 IS NOT NULL) UNION ALL SELECT "));
  EXPECT_TRUE(
      Has(sql,
          "FROM public.v_sales w WHERE (w.region = f.g0 OR (w.region IS NULL AND f.g0 IS NULL)) LIMIT 1) w ON true "
          "WHERE NOT (f.g0 IS NOT NULL))"));
  // Existing rows are updated in place by ctid (also given as an array: a TID
  // scan), only when a value changed.
  EXPECT_TRUE(Has(sql, "upd AS (UPDATE public.v_sales v SET (region, "));
  EXPECT_TRUE(Has(sql,
                  "FROM ov WHERE v.ctid = ov.__tid AND v.ctid = ANY (ARRAY(SELECT ov.__tid FROM ov WHERE ov.__live AND "
                  "ROW(ov.o0, "));
  EXPECT_TRUE(Has(sql, ") IS DISTINCT FROM ROW(ov.c0, ov.c1"));
  // Rows of groups without an output row go; new groups' rows come.
  EXPECT_TRUE(Has(sql, "del AS (DELETE FROM public.v_sales v USING ov WHERE v.ctid = ov.__tid AND "));
  EXPECT_TRUE(Has(sql, "WHERE NOT ov.__live)) AND NOT ov.__live RETURNING v.*)"));
  EXPECT_TRUE(Has(sql, "ins AS (INSERT INTO public.v_sales SELECT ov.c0, ov.c1"));
  EXPECT_TRUE(Has(sql, "FROM ov WHERE ov.__tid IS NULL AND ov.__live RETURNING *)"));
  // Groups that lost their last row leave the state too.
  EXPECT_TRUE(
      Has(sql, "gc AS (DELETE FROM ivm_state.state_1 s USING (SELECT g0 FROM ivm_groups WHERE __cnt = 0) g WHERE"));
  EXPECT_TRUE(Has(sql, "AND s.__cnt = 0)"));
  // The view's change: old and new values of updated rows, deleted and inserted rows.
  EXPECT_TRUE(Has(sql, "SELECT o0 AS region, "));
  EXPECT_TRUE(Has(sql, "-1::int8 AS __m FROM upd UNION ALL SELECT n0, "));
  EXPECT_TRUE(
      Has(sql, "1::int8 FROM upd UNION ALL SELECT del.*, -1::int8 FROM del UNION ALL SELECT ins.*, 1::int8 FROM ins"));
}

TEST(AggApply, EachCaseLeavesOutWhatItCannotNeed) {
  const ViewPlan p = grouped_agg(true);
  // No NULL group key among the returned groups: one probe arm, no NULL-safe one.
  const std::string keyed = sql_agg_apply(p, false, {false, true});
  EXPECT_TRUE(Has(keyed, " FROM public.v_sales w WHERE w.region = f.g0 LIMIT 1) w ON true WHERE (f.g0 IS NOT NULL))"));
  EXPECT_TRUE(Lacks(keyed, "w.region IS NULL"));
  EXPECT_TRUE(Has(keyed, "del AS (DELETE FROM public.v_sales"));
  EXPECT_TRUE(Has(keyed, "gc AS (DELETE FROM ivm_state.state_1"));
  // No emptied group and no HAVING: no row leaves the view or the state.
  const std::string kept = sql_agg_apply(p, false, {true, false});
  EXPECT_TRUE(Lacks(kept, "del AS"));
  EXPECT_TRUE(Lacks(kept, "FROM del"));
  EXPECT_TRUE(Lacks(kept, "gc AS"));
  EXPECT_TRUE(Has(kept, "w.region IS NULL AND f.g0 IS NULL"));
  EXPECT_TRUE(Has(kept, "1::int8 FROM upd UNION ALL SELECT ins.*, 1::int8 FROM ins"));
  // With HAVING a group may lose its row without being emptied; its state stays.
  ViewPlan h = grouped_agg(false);
  h.having = "f.a0 > 1";
  const std::string filtered = sql_agg_apply(h, false, {false, false});
  EXPECT_TRUE(Has(filtered, "del AS (DELETE FROM public.v_sales"));
  EXPECT_TRUE(Has(filtered, "UNION ALL SELECT del.*, -1::int8 FROM del"));
  EXPECT_TRUE(Lacks(filtered, "gc AS"));
  // The defaults cover every case.
  EXPECT_EQ(sql_agg_apply(p, false), sql_agg_apply(p, false, {true, true}));
}

TEST(AggUpsertRows, ReturnsEachGroupWithItsViewRow) {
  ViewPlan p = grouped_agg(false);
  p.having = "f.a0 > 1";
  const plan::Changes c{{0, inserted("ivm_new")}};
  const std::string upsert = sql_agg_upsert(p, c);
  const std::string sql = sql_agg_upsert_rows(p, c);
  // The upsert itself, unchanged, becomes a CTE of the statement.
  const std::string insert = upsert.substr(upsert.find("INSERT INTO ivm_state.state_1 AS s "));
  EXPECT_TRUE(Has(sql, ", up AS (" + insert + "), f AS (SELECT s.g0, s.a0 AS a0, "));
  EXPECT_TRUE(Has(sql, "s.__cnt, s.__dirty FROM up s)"));
  // Live: the group has rows and passes HAVING; NULL (unknown) counts as not live.
  EXPECT_TRUE(Has(sql, "fl AS (SELECT f.*, coalesce((f.__cnt > 0 AND (f.a0 > 1)), false) AS __live FROM f)"));
  // The group column always (it finds the view's row); the others only for live groups.
  EXPECT_TRUE(Has(sql, " SELECT f.*, f.g0 AS c0, CASE WHEN f.__live THEN f.a0 END AS c1, "));
  EXPECT_TRUE(Has(sql, "CASE WHEN f.__live THEN f.a7 END AS c8 FROM fl f"));
}

TEST(StateMerge, AlgebraicAndCountedExtremesWithPlainOutputsAreMergeable) {
  EXPECT_TRUE(state_mergeable(grouped_agg(false)));
  EXPECT_TRUE(state_mergeable(two_group_agg()));
  // Per output column, the group (-1 - j) or the aggregate (i) the merge writes there.
  EXPECT_EQ(merged_columns(two_group_agg()), (std::vector<int>{-1, -2, 0}));
  EXPECT_EQ(merged_columns(grouped_agg(false)), (std::vector<int>{-1, 0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_TRUE(merged_columns(grouped_agg(true)).empty());
  // A recomputed aggregate, HAVING, an output expression, uncounted extremes,
  // no groups: the upsert statement.
  EXPECT_FALSE(state_mergeable(grouped_agg(true)));
  ViewPlan having = grouped_agg(false);
  having.having = "f.a0 > 1";
  EXPECT_FALSE(state_mergeable(having));
  ViewPlan expr = grouped_agg(false);
  expr.finals[1] = "(f.a0 * 2)";
  EXPECT_FALSE(state_mergeable(expr));
  ViewPlan group_as_agg = grouped_agg(false);
  group_as_agg.finals[0] = "f.a0";  // a group column must be the group itself
  EXPECT_FALSE(state_mergeable(group_as_agg));
  ViewPlan no_counts = grouped_agg(false);
  no_counts.extreme_counts = false;
  EXPECT_FALSE(state_mergeable(no_counts));
  EXPECT_FALSE(state_mergeable(global_agg()));
  EXPECT_FALSE(state_mergeable(spj_single()));
}

TEST(StateMerge, DeltasAreWhatTheUpsertInsertsNamedAndCastAsTheState) {
  const ViewPlan p = grouped_agg(false);
  const plan::Changes c{{0, inserted("ivm_new")}};
  const std::string upsert = sql_agg_upsert(p, c);
  const std::string deltas = sql_agg_deltas(p, c);
  // The same WITH list, then a read-only SELECT: no INSERT, no ON CONFLICT.
  const std::string with = upsert.substr(0, upsert.find(" INSERT INTO "));
  EXPECT_EQ(deltas.rfind(with + " SELECT ", 0), 0u);
  EXPECT_TRUE(Lacks(deltas, "INSERT"));
  EXPECT_TRUE(Lacks(deltas, "ON CONFLICT"));
  // Each value cast to its state column's type, as the INSERT would assign it.
  EXPECT_TRUE(Has(deltas, "SELECT (gd.c0)::text AS g0, (gd.__cnt)::int8 AS __cnt, (gd.a0)::bigint AS a0, "));
  EXPECT_TRUE(Has(deltas, "(gd.a1)::numeric AS a1, (gd.n1)::int8 AS n1, "));
  EXPECT_TRUE(Has(deltas,
                  "(mm3.ins)::integer AS a3, (mm3.insc)::int8 AS x3, (mm3.del)::integer AS d3, "
                  "(mm3.delc)::int8 AS dc3, "));
  EXPECT_TRUE(Has(deltas, "(gd.a7)::interval AS a7, (gd.n7)::int8 AS n7, "));
  // Sorted by group, as the upsert locks the groups.
  EXPECT_TRUE(Has(deltas, " WHERE gd.__cnt IS NOT NULL ORDER BY gd.c0"));
  EXPECT_EQ(deltas.substr(deltas.size() - std::string("ORDER BY gd.c0").size()), "ORDER BY gd.c0");
}

// Where the merge steps aside (a group without its state row), the upsert reads the deltas
// already computed: the same ON CONFLICT clause and the same returned rows, over the deltas'
// columns instead of the WITH list that computes them.
TEST(StateMerge, UpsertFromTheDeltasIsTheUpsertWithoutComputingThem) {
  const ViewPlan p = grouped_agg(false);
  const plan::Changes c{{0, inserted("ivm_new")}};
  const std::string rows = sql_agg_upsert_rows(p, c);
  const std::string from = sql_agg_upsert_rows_from_deltas(p, c);
  EXPECT_TRUE(Lacks(from, "ivm_new"));
  EXPECT_TRUE(Lacks(from, "gd."));
  EXPECT_EQ(0u, from.find("WITH up AS (INSERT INTO ivm_state.state_1 AS s (g0, __cnt, a0, a1, n1, "));
  EXPECT_TRUE(Has(from, ") SELECT g0, __cnt, a0, a1, n1, "));
  EXPECT_TRUE(Has(from, " FROM ivm_agg_deltas ORDER BY g0 ON CONFLICT (g0) DO UPDATE SET "));
  // Everything from ON CONFLICT on (the merge rules, RETURNING, the finalized rows) is the same.
  EXPECT_EQ(rows.substr(rows.find(" ON CONFLICT ")), from.substr(from.find(" ON CONFLICT ")));
  // The columns it reads are the ones the deltas statement names.
  const std::string deltas = sql_agg_deltas(p, c);
  const std::string cols =
      from.substr(from.find(") SELECT ") + 9, from.find(" FROM ivm_agg_deltas") - from.find(") SELECT ") - 9);
  std::size_t start = 0;
  while (start < cols.size()) {
    std::size_t end = cols.find(", ", start);
    if (end == std::string::npos) end = cols.size();
    EXPECT_TRUE(Has(deltas, " AS " + cols.substr(start, end - start))) << cols.substr(start, end - start);
    start = end + 2;
  }
  // A global aggregate has one group: nothing to sort.
  EXPECT_TRUE(Has(sql_agg_upsert_rows_from_deltas(global_agg(), c), " FROM ivm_agg_deltas ON CONFLICT (__k) "));
}

// The change's rows the deltas are summed from below SQL (apply/fold.hpp): per row its group,
// each aggregate's argument (sums cast to the state's type, as the deltas statement casts them
// before summing) and FILTER, and __m; sorted as the deltas statement sorts its groups.
TEST(StateFold, DeltaRowsCarryEachAggregatesArgumentAndFilterSortedByGroup) {
  ViewPlan p = grouped_agg(false);
  EXPECT_FALSE(foldable(p));  // AVG(interval): its deltas come from the statement
  EXPECT_EQ(sql_agg_delta_rows(p, {{0, inserted("ivm_new")}}), "");
  p.aggs.pop_back();
  p.columns.pop_back();
  p.types.pop_back();
  p.finals.pop_back();
  ASSERT_TRUE(foldable(p));
  const plan::Changes c{{0, inserted("ivm_new")}};
  const std::string rows = sql_agg_delta_rows(p, c);
  const std::string deltas = sql_agg_deltas(p, c);
  // The same change rows d as the deltas statement's.
  const std::string d = deltas.substr(std::string("WITH d AS (").size(), deltas.find("), gd AS (") - 11);
  EXPECT_TRUE(Has(rows, " FROM (" + d + ") d ORDER BY d.c0"));
  // count(*) has no argument; SUM and AVG cast theirs; MIN, MAX, bool_and as they are; a FILTER.
  EXPECT_TRUE(Has(rows,
                  "SELECT d.c0 AS g0, (d.c1)::numeric AS v1, (d.c2)::numeric AS v2, d.c3 AS v3, "
                  "d.c4 AS v4, d.c5 AS v5, d.c6 AS f6, d.__m FROM ("));
  EXPECT_TRUE(Lacks(rows, " AS v0"));
  EXPECT_TRUE(Lacks(rows, "GROUP BY"));
  // Two groups: both, sorted in order.
  EXPECT_TRUE(Has(sql_agg_delta_rows(two_group_agg(), c), ") d ORDER BY d.c0, d.c1"));
  EXPECT_EQ(0u, sql_agg_delta_rows(two_group_agg(), c).find("SELECT d.c0 AS g0, d.c1 AS g1, d.__m FROM ("));
  // Only bigint and numeric sums are summed below SQL; nothing that is not merged is.
  ViewPlan money = p;
  money.aggs[1].state_type = "money";
  EXPECT_FALSE(foldable(money));
  EXPECT_FALSE(foldable(grouped_agg(true)));
  EXPECT_FALSE(foldable(global_agg()));
}

// The same items over the leaves, for computing them below SQL (apply/computed.hpp): names and
// order as the statement's, each value the layout's expression itself, sums cast alike.
TEST(StateFold, DeltaItemsAreTheStatementsColumnsOverTheLeaves) {
  ViewPlan p = grouped_agg(false);
  EXPECT_TRUE(agg_delta_items(p).empty());  // not foldable
  p.aggs.pop_back();
  p.columns.pop_back();
  p.types.pop_back();
  p.finals.pop_back();
  ASSERT_TRUE(foldable(p));
  const auto items = agg_delta_items(p);
  const std::string rows = sql_agg_delta_rows(p, {{0, inserted("ivm_new")}});
  std::string select = "SELECT ";
  for (const auto& [name, value] : items) select += name + ", ";
  ASSERT_EQ(items.size(), 7u);
  EXPECT_EQ(items[0], std::make_pair(std::string("g0"), p.groups[0]));
  EXPECT_EQ(items[1], std::make_pair(std::string("v1"), "(" + p.aggs[1].arg + ")::numeric"));
  EXPECT_EQ(items[6], std::make_pair(std::string("f6"), p.aggs[6].filter));
  // Every name in the statement's select list, in the same order.
  std::size_t at = 0;
  for (const auto& item : items) {
    std::size_t next = rows.find(" AS " + item.first, at);
    ASSERT_NE(next, std::string::npos) << item.first;
    at = next;
  }
  const auto two = agg_delta_items(two_group_agg());
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[1].first, "g1");
}

TEST(AggApply, GarbageCollectionIsAStatementOfItsOwn) {
  const ViewPlan p = grouped_agg(false);
  const std::string gc = sql_agg_gc(p);
  EXPECT_EQ(gc,
            "DELETE FROM ivm_state.state_1 s USING (SELECT g0 FROM ivm_groups WHERE __cnt = 0) g WHERE (s.g0 = g.g0 OR "
            "(s.g0 IS NULL AND g.g0 IS NULL)) AND s.__cnt = 0");
  EXPECT_TRUE(Has(sql_agg_apply(p, true), "gc AS (" + gc + ")"));
}

TEST(AggApply, RecomputedGroupsAreReadFromTheState) {
  const ViewPlan p = grouped_agg(true);
  const std::string sql = sql_agg_apply(p, true);
  EXPECT_TRUE(
      Has(sql, "FROM ivm_state.state_1 s JOIN ivm_groups g ON (s.g0 = g.g0 OR (s.g0 IS NULL AND g.g0 IS NULL))"));
}

TEST(AggApply, Finalization) {
  const ViewPlan p = grouped_agg(true);
  const std::string sql = sql_agg_apply(p, false);
  EXPECT_TRUE(Has(sql, "s.a0 AS a0"));
  EXPECT_TRUE(Has(sql, "CASE WHEN s.n1 > 0 THEN s.a1 END AS a1"));
  // AVG divides numerically, AVG(interval) by a float8 count.
  EXPECT_TRUE(Has(sql, "CASE WHEN s.n2 > 0 THEN s.a2::numeric / s.n2::numeric END AS a2"));
  EXPECT_TRUE(Has(sql, "CASE WHEN s.n7 > 0 THEN s.a7 / s.n7::float8 END AS a7"));
  EXPECT_TRUE(Lacks(sql, "s.a7::numeric"));
  EXPECT_TRUE(Has(sql, "s.a3 AS a3"));
  EXPECT_TRUE(Has(sql, "CASE WHEN s.n5 > 0 THEN s.a5 = s.n5 END AS a5"));
  EXPECT_TRUE(Has(sql, "s.a8 AS a8"));
  const std::string g = sql_agg_apply(global_agg(), false);
  EXPECT_TRUE(Has(g, "CASE WHEN s.n4 > 0 THEN s.a4 > 0 END AS a4"));
}

TEST(AggApply, HavingDecidesWhetherAGroupHasARow) {
  ViewPlan p = grouped_agg(false);
  p.having = "f.a0 > 1";
  EXPECT_TRUE(Has(sql_agg_apply(p, false), "coalesce((f.__cnt > 0 AND (f.a0 > 1)), false) AS __live"));
  ViewPlan q = global_agg();
  q.having = "f.a0 > 1";
  EXPECT_TRUE(Has(sql_agg_apply(q, false), "coalesce(((f.a0 > 1)), false) AS __live"));
}

TEST(AggApply, GlobalKeepsTheSingleRowEvenWhenEmpty) {
  const ViewPlan p = global_agg();
  const std::string sql = sql_agg_apply(p, true);
  EXPECT_TRUE(Has(sql, "FROM ivm_state.state_2 s)"));
  EXPECT_TRUE(Lacks(sql, "ivm_groups"));
  EXPECT_TRUE(Lacks(sql, "__cnt > 0"));  // count(*) = 0 still has a row
  EXPECT_TRUE(Lacks(sql, "gc AS"));
  // The one row pairs with the view's row unconditionally: updated, deleted only
  // when HAVING rejects it, inserted when missing.
  EXPECT_TRUE(Has(sql, "coalesce(true, false) AS __live FROM f) f LEFT JOIN public.v_total w ON true)"));
  EXPECT_TRUE(Has(sql, "FROM ov WHERE ov.__tid IS NULL AND ov.__live RETURNING *)"));
  EXPECT_TRUE(Has(sql_agg_apply(p, false), " FROM ivm_groups s)"));
}

// --- storage, populate, clear --------------------------------------------

// Rows updated in place get room on their page (HOT updates); a bag-applied
// view (no locator: rows deleted and inserted) keeps full pages.
TEST(CreateStorage, TablesUpdatedInPlaceLeaveRoomOnEachPage) {
  const std::string ff = " WITH (fillfactor = " + std::to_string(kFillfactor) + ")";
  EXPECT_EQ(ff, storage_options(grouped_agg(false)));
  EXPECT_TRUE(Has(sql_create_storage(grouped_agg(false))[0], ")" + ff));
  EXPECT_TRUE(Has(sql_create_storage(global_agg())[0], ")" + ff));
  ViewPlan located = spj_single();
  located.locator = 0;
  EXPECT_EQ(ff, storage_options(located));
  ViewPlan bag = spj_single();
  bag.locator = -1;
  EXPECT_EQ("", storage_options(bag));
}

TEST(CreateStorage, GroupedStateTable) {
  const ViewPlan p = grouped_agg(true);
  const std::vector<std::string> sql = sql_create_storage(p);
  ASSERT_EQ(1u, sql.size());
  EXPECT_EQ(0u, sql[0].find("CREATE TABLE ivm_state.state_1 (g0 text, __cnt int8 NOT NULL, a0 bigint, "));
  EXPECT_TRUE(Has(sql[0], "a1 numeric, n1 int8, a2 numeric, n2 int8"));
  EXPECT_TRUE(Has(sql[0], "a3 integer, x3 int8, d3 integer, dc3 int8, a4 integer, x4 int8, d4 integer, dc4 int8"));
  EXPECT_TRUE(Has(sql[0], "a5 bigint, n5 int8, a6 bigint, a7 interval, n7 int8, a8 bigint, "));
  EXPECT_TRUE(Lacks(sql[0], "n0 "));
  EXPECT_TRUE(Lacks(sql[0], "n8"));
  EXPECT_TRUE(Lacks(sql[0], "__k"));
  EXPECT_TRUE(Has(sql[0], "__dirty boolean NOT NULL DEFAULT false)"));
  const std::vector<std::string> idx = sql_create_indexes(p);
  ASSERT_EQ(2u, idx.size());
  EXPECT_EQ("CREATE UNIQUE INDEX ON ivm_state.state_1 (g0) NULLS NOT DISTINCT", idx[0]);
  EXPECT_EQ("CREATE INDEX ON public.v_sales (region)", idx[1]);
}

TEST(CreateStorage, SeveralGroupsShareOneUniqueIndex) {
  const std::vector<std::string> sql = sql_create_storage(two_group_agg());
  ASSERT_EQ(1u, sql.size());
  EXPECT_TRUE(Has(sql[0], "(g0 text, g1 integer, __cnt int8 NOT NULL"));
  const std::vector<std::string> idx = sql_create_indexes(two_group_agg());
  ASSERT_EQ(2u, idx.size());
  EXPECT_TRUE(Has(idx[0], "CREATE UNIQUE INDEX ON ivm_state.state_3 (g0, g1) NULLS NOT DISTINCT"));
  EXPECT_TRUE(Has(idx[1], "CREATE INDEX ON public.v_ry (region, year)"));
}

TEST(CreateStorage, GlobalStateHasASingleKeyRow) {
  const std::vector<std::string> sql = sql_create_storage(global_agg());
  ASSERT_EQ(1u, sql.size());
  EXPECT_EQ(0u, sql[0].find("CREATE TABLE ivm_state.state_2 (__k boolean NOT NULL DEFAULT true, __cnt int8 NOT NULL"));
  EXPECT_TRUE(Has(sql[0], "a3 numeric, x3 int8, d3 numeric, dc3 int8"));
  EXPECT_TRUE(Has(sql[0], "a4 bigint, n4 int8"));
  const std::vector<std::string> idx = sql_create_indexes(global_agg());
  ASSERT_EQ(1u, idx.size());
  EXPECT_EQ("CREATE UNIQUE INDEX ON ivm_state.state_2 (__k) NULLS NOT DISTINCT", idx[0]);
}

TEST(CreateStorage, SpjIndexesTheLocatorAndCreatesTheKeylock) {
  EXPECT_TRUE(sql_create_storage(spj_single()).empty());
  const std::vector<std::string> single = sql_create_indexes(spj_single());
  ASSERT_EQ(1u, single.size());
  EXPECT_EQ("CREATE INDEX ON public.v_spj (id)", single[0]);
  const std::vector<std::string> join = sql_create_storage(inner_join());
  ASSERT_EQ(1u, join.size());
  EXPECT_EQ("CREATE TABLE ivm_state.keylock_1 (k integer PRIMARY KEY) WITH (fillfactor = 85)", join[0]);
  const std::vector<std::string> join_idx = sql_create_indexes(inner_join());
  ASSERT_EQ(1u, join_idx.size());
  EXPECT_EQ("CREATE INDEX ON public.v_join (name)", join_idx[0]);
}

TEST(Populate, GlobalAggregateHasNoGroupBy) {
  const Populate pop = sql_populate(global_agg());
  const std::vector<std::string>& sql = pop.statements;
  ASSERT_EQ(2u, sql.size());
  EXPECT_EQ(0u,
            sql[0].find("INSERT INTO ivm_state.state_2 SELECT (true)::boolean AS __k, (count(*))::int8 AS __cnt, "));
  EXPECT_TRUE(Lacks(sql[0], "GROUP BY"));
  EXPECT_TRUE(Has(sql[0], "(count(b.c1) FILTER (WHERE b.c2))::bigint AS a2"));
  EXPECT_TRUE(Has(sql[0],
                  "(pg_catalog.min(b.c3) FILTER (WHERE b.c4))::numeric AS a3, NULL::int8 AS x3, "
                  "NULL::numeric AS d3, NULL::int8 AS dc3, "));
  EXPECT_TRUE(Has(sql[0], "(count(*) FILTER (WHERE b.c5))::bigint AS a4"));
  EXPECT_TRUE(Has(sql[0], "(false)::boolean AS __dirty FROM ("));
  EXPECT_TRUE(Has(sql[1], "INSERT INTO public.v_total SELECT f.a0, f.a1, f.a2, f.a3, f.a4 FROM (SELECT s.__k, "));
  EXPECT_TRUE(Lacks(sql[1], "__cnt > 0"));
  // The one query: a global group always has its row.
  EXPECT_GT(pop.state_columns, 0u);
  EXPECT_TRUE(Has(pop.rows, "coalesce(true, false) AS __emit"));
}

// The rows of the single query are the state table's columns, in its order,
// then the view's: the loader writes them as they are.
TEST(Populate, OneQueryGivesTheStateRowThenTheViewRow) {
  for (const ViewPlan& p : {grouped_agg(true), global_agg(), two_group_agg()}) {
    const Populate pop = sql_populate(p);
    const std::string create = sql_create_storage(p)[0];
    // As many state columns as the table has (one definition per comma at depth 0).
    std::size_t defs = 1, depth = 0;
    for (std::size_t i = create.find('(') + 1; i < create.find(") WITH"); ++i) {
      if (create[i] == '(') ++depth;
      if (create[i] == ')') --depth;
      if (create[i] == ',' && depth == 0) ++defs;
    }
    EXPECT_EQ(defs, pop.state_columns) << p.name;
    EXPECT_EQ(p.columns.size(), pop.view_columns) << p.name;
    const std::string first = p.group_columns.empty() ? "CASE WHEN f.__emit THEN " + p.finals[0] + " END" : p.finals[0];
    EXPECT_EQ(0u, pop.rows.find("SELECT s.*, " + first + ", ")) << pop.rows;
    EXPECT_TRUE(Has(pop.rows, ", f.__emit FROM (SELECT ")) << pop.rows;
    // The state rows are the state INSERT's, to the letter.
    EXPECT_TRUE(Has(pop.statements[0],
                    pop.rows.substr(pop.rows.find(" FROM (SELECT ") + 7,
                                    pop.rows.find(") s CROSS JOIN LATERAL") - pop.rows.find(" FROM (SELECT ") - 7)));
  }
}

TEST(Populate, HavingDecidesWhichGroupsHaveAViewRow) {
  ViewPlan p = grouped_agg(true);
  p.having = "f.a0 > 1";
  const Populate pop = sql_populate(p);
  EXPECT_TRUE(Has(pop.rows, "coalesce((f.__cnt > 0 AND (f.a0 > 1)), false) AS __emit"));
  EXPECT_TRUE(Has(pop.statements[1], "WHERE f.__cnt > 0 AND (f.a0 > 1)"));
}

TEST(Populate, GroupedAggregateGroupsByTheGroupColumns) {
  const std::vector<std::string> sql = sql_populate(grouped_agg(true)).statements;
  ASSERT_EQ(2u, sql.size());
  EXPECT_EQ(0u, sql[0].find("INSERT INTO ivm_state.state_1 SELECT (b.c0)::text AS g0, (count(*))::int8 AS __cnt, "
                            "(count(*))::bigint AS a0, "));
  EXPECT_TRUE(Has(sql[0], "(sum((b.c1)::numeric))::numeric AS a1, (count(b.c1))::int8 AS n1"));
  EXPECT_TRUE(Has(sql[0], "(count(*) FILTER (WHERE b.c6))::bigint AS a6"));
  EXPECT_TRUE(Has(sql[0], "(pg_catalog.count(DISTINCT b.c8))::bigint AS a8"));
  EXPECT_TRUE(Has(sql[0], "FROM (SELECT l1.region AS c0, l1.amount AS c1, "));
  EXPECT_TRUE(Has(sql[0], "FROM public.sales l1) b GROUP BY b.c0"));
  EXPECT_TRUE(Has(sql[1], "WHERE f.__cnt > 0"));
}

TEST(Populate, CountStarOnlyReadsNoColumns) {
  ViewPlan p = global_agg();
  p.aggs.resize(1);
  p.finals = {"f.a0"};
  const std::vector<std::string> sql = sql_populate(p).statements;
  EXPECT_TRUE(Has(sql[0], "FROM (SELECT 1 AS c FROM public.orders l1) b"));
  EXPECT_TRUE(Has(sql_body_rows(p, {}), "SELECT 1 AS c FROM public.orders l1"));
}

TEST(Populate, SpjAppliesWhere) {
  const Populate pop = sql_populate(spj_single());
  ASSERT_EQ(1u, pop.statements.size());
  EXPECT_EQ("SELECT l1.id, l1.amount FROM public.orders l1 WHERE (l1.amount > 0)", pop.rows);
  EXPECT_EQ("INSERT INTO public.v_spj " + pop.rows, pop.statements[0]);
  EXPECT_EQ(0u, pop.state_columns);
  EXPECT_EQ(2u, pop.view_columns);
  EXPECT_TRUE(Lacks(pop.rows, "__emit"));
}

TEST(Clear, DeletesViewAndState) {
  EXPECT_EQ(std::vector<std::string>{"DELETE FROM public.v_spj"}, sql_clear(spj_single()));
  EXPECT_EQ((std::vector<std::string>{"DELETE FROM public.v_total", "DELETE FROM ivm_state.state_2"}),
            sql_clear(global_agg()));
}

// --- plan properties and explain -----------------------------------------

TEST(Plan, NeedsRecomputeAndGlobal) {
  EXPECT_TRUE(grouped_agg(false).needs_recompute());  // MIN/MAX
  EXPECT_TRUE(grouped_agg(true).needs_recompute());
  EXPECT_FALSE(two_group_agg().needs_recompute());
  EXPECT_FALSE(spj_single().needs_recompute());
  for (AggKind k : {AggKind::Min, AggKind::Max, AggKind::Recompute}) {
    ViewPlan p = two_group_agg();
    p.aggs.push_back(agg(k, "l1.year", "integer", "pg_catalog.f"));
    EXPECT_TRUE(p.needs_recompute()) << static_cast<int>(k);
  }
  for (AggKind k :
       {AggKind::CountStar, AggKind::Count, AggKind::Sum, AggKind::Avg, AggKind::BoolAnd, AggKind::BoolOr}) {
    ViewPlan p = two_group_agg();
    p.aggs.push_back(agg(k, "l1.year", "integer"));
    EXPECT_FALSE(p.needs_recompute()) << static_cast<int>(k);
  }
  EXPECT_TRUE(global_agg().global());
  EXPECT_FALSE(grouped_agg(true).global());
  EXPECT_FALSE(spj_single().global());  // no aggregate, no groups: not global
}

TEST(Explain, DescribesPlanAndMaintenance) {
  const std::string outer = explain(left_join());
  EXPECT_TRUE(Has(outer, "Left Join on l1.id = l2.customer_id"));
  EXPECT_TRUE(Has(outer, "Scan public.customers l1 key l1.id"));
  EXPECT_TRUE(Has(outer, "affected-key recompute over outer joins"));
  EXPECT_TRUE(Has(outer, "writers serialize per join key"));
  EXPECT_TRUE(Has(outer, "1. lock keys: INSERT INTO ivm_state.keylock_1"));
  const std::string single = explain(spj_single());
  EXPECT_TRUE(Has(single, "Project"));
  EXPECT_TRUE(Has(single, "linear delta rules"));
  EXPECT_TRUE(Lacks(single, "lock keys"));
  const std::string agg = explain(grouped_agg(true));
  EXPECT_TRUE(Has(agg, "a8: recompute pg_catalog.count distinct(l1.customer)"));
  EXPECT_TRUE(Has(agg, "4. recompute dirty groups: WITH rc AS ("));
  // The view written by key, with the SQL statements for when it cannot be.
  EXPECT_TRUE(Has(agg, "2. update state, returning each changed group's view row: WITH d AS ("));
  EXPECT_TRUE(Has(agg, "3. write the view by key (region): "));
  EXPECT_TRUE(Has(agg, "2'. update state: WITH d AS ("));
  EXPECT_TRUE(Lacks(single, "write the view by key"));
  EXPECT_TRUE(Lacks(explain(two_group_agg()), "recompute dirty groups"));
}

}  // namespace
}  // namespace ivm::plan

// serialize_test.cpp: guards the persisted ViewPlan format (ivm.views.plan).
// Every field must survive serialize -> deserialize unchanged, including
// strings that look like the format itself (':' followed by digits, newlines);
// the numeric values of the enums and the byte layout are pinned, because
// stored plans outlive the binary that wrote them; and corrupt text must be
// rejected with an exception rather than yield a plausible-looking plan.
#include "plan/ir.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace ivm::plan {
namespace {

// A plan in which every field differs from its default, and strings contain
// the format's own syntax.
ViewPlan rich_plan() {
  ViewPlan p;
  p.name = "\"my:schema\".\"v:12:34\"";
  p.oid = 4294967295u;  // largest oid: must not come back negative or truncated
  p.state = "ivm.\"state\n3:abc\"";
  p.keylock = "ivm.keylock_16384";
  p.key_type = "character varying(10)";
  p.outer = true;

  Leaf a;
  a.alias = "l1";
  a.relation = "public.\"t:1\"";
  a.relid = 16384;
  a.is_view = true;
  a.columns = {"id", "\"weird:7:col\"", "\"multi\nline\"", ""};
  a.key = "l1.id";
  Leaf b;
  b.alias = "l2";
  b.relation = "public.\"2:\"";
  b.relid = 2147483648u;  // above INT32_MAX
  b.is_view = false;
  b.columns = {"rid", "x"};
  b.key = "(l2.rid)::int8";
  p.leaves = {a, b};

  JoinNode j0;
  j0.kind = JoinKind::Leaf;
  j0.leaf = 0;
  JoinNode j1;
  j1.kind = JoinKind::Leaf;
  j1.leaf = 1;
  JoinNode j2;
  j2.kind = JoinKind::Full;
  j2.leaf = 7;  // non-default even where unused
  j2.left = 0;
  j2.right = 1;
  j2.on = "l1.id = l2.rid AND l2.x <> '5:x\n'";
  p.joins = {j0, j1, j2};
  p.root = 2;
  p.where = "l1.\"weird:7:col\" ~ '^[0-9]+:'\nAND true";

  p.columns = {"id", "\"n:1\"", "total"};
  p.types = {"integer", "text", "numeric(10,2)"};
  p.locator = 1;
  p.outputs = {"l1.id", "'0:'::text", "l2.x"};

  p.aggregate = true;
  p.groups = {"l1.id", "(l2.x || ':9')"};
  p.group_types = {"integer", "text"};
  p.group_columns = {0, 1};

  Aggregate s;
  s.kind = AggKind::Avg;
  s.arg = "l2.x::numeric";
  s.filter = "l1.id > 10";
  s.state_type = "numeric";
  s.call = "pg_catalog.avg";
  s.distinct = true;
  s.interval_avg = true;
  Aggregate r;
  r.kind = AggKind::Recompute;
  r.arg = "l1.\"multi\nline\"";
  r.filter = "";
  r.state_type = "bigint";
  r.call = "pg_catalog.count";
  r.distinct = true;
  r.interval_avg = false;
  Aggregate m;
  m.kind = AggKind::Max;
  m.arg = "l2.x";
  m.filter = "l2.x <> '12:'";
  m.state_type = "text COLLATE \"C\"";
  m.call = "pg_catalog.max";
  p.aggs = {s, r, m};
  p.finals = {"f.g0", "f.g1", "f.a0 + f.a1"};
  p.having = "f.a1 > 3\n-- 4:x";
  p.view_key = 3;
  p.unique_key = true;
  p.key_provable = true;
  return p;
}

void expect_leaf_eq(const Leaf& want, const Leaf& got, std::size_t i) {
  SCOPED_TRACE("leaf " + std::to_string(i));
  EXPECT_EQ(want.alias, got.alias);
  EXPECT_EQ(want.relation, got.relation);
  EXPECT_EQ(want.relid, got.relid);
  EXPECT_EQ(want.is_view, got.is_view);
  EXPECT_EQ(want.columns, got.columns);
  EXPECT_EQ(want.key, got.key);
}

void expect_join_eq(const JoinNode& want, const JoinNode& got, std::size_t i) {
  SCOPED_TRACE("join " + std::to_string(i));
  EXPECT_EQ(want.kind, got.kind);
  EXPECT_EQ(want.leaf, got.leaf);
  EXPECT_EQ(want.left, got.left);
  EXPECT_EQ(want.right, got.right);
  EXPECT_EQ(want.on, got.on);
}

void expect_agg_eq(const Aggregate& want, const Aggregate& got, std::size_t i) {
  SCOPED_TRACE("aggregate " + std::to_string(i));
  EXPECT_EQ(want.kind, got.kind);
  EXPECT_EQ(want.arg, got.arg);
  EXPECT_EQ(want.filter, got.filter);
  EXPECT_EQ(want.state_type, got.state_type);
  EXPECT_EQ(want.call, got.call);
  EXPECT_EQ(want.distinct, got.distinct);
  EXPECT_EQ(want.interval_avg, got.interval_avg);
}

void expect_plan_eq(const ViewPlan& want, const ViewPlan& got) {
  EXPECT_EQ(want.name, got.name);
  EXPECT_EQ(want.oid, got.oid);
  EXPECT_EQ(want.state, got.state);
  EXPECT_EQ(want.keylock, got.keylock);
  EXPECT_EQ(want.key_type, got.key_type);
  EXPECT_EQ(want.outer, got.outer);
  ASSERT_EQ(want.leaves.size(), got.leaves.size());
  for (std::size_t i = 0; i < want.leaves.size(); ++i) expect_leaf_eq(want.leaves[i], got.leaves[i], i);
  ASSERT_EQ(want.joins.size(), got.joins.size());
  for (std::size_t i = 0; i < want.joins.size(); ++i) expect_join_eq(want.joins[i], got.joins[i], i);
  EXPECT_EQ(want.root, got.root);
  EXPECT_EQ(want.where, got.where);
  EXPECT_EQ(want.columns, got.columns);
  EXPECT_EQ(want.types, got.types);
  EXPECT_EQ(want.locator, got.locator);
  EXPECT_EQ(want.outputs, got.outputs);
  EXPECT_EQ(want.aggregate, got.aggregate);
  EXPECT_EQ(want.groups, got.groups);
  EXPECT_EQ(want.group_types, got.group_types);
  EXPECT_EQ(want.group_columns, got.group_columns);
  ASSERT_EQ(want.aggs.size(), got.aggs.size());
  for (std::size_t i = 0; i < want.aggs.size(); ++i) expect_agg_eq(want.aggs[i], got.aggs[i], i);
  EXPECT_EQ(want.finals, got.finals);
  EXPECT_EQ(want.having, got.having);
  EXPECT_EQ(want.view_key, got.view_key);
  EXPECT_EQ(want.extreme_counts, got.extreme_counts);
  EXPECT_EQ(want.unique_key, got.unique_key);
  EXPECT_EQ(want.key_provable, got.key_provable);
}

TEST(Serialize, RichPlanRoundTripsFieldByField) {
  const ViewPlan p = rich_plan();
  const std::string text = serialize(p);
  const ViewPlan q = deserialize(text);
  expect_plan_eq(p, q);
  // Derived state follows (Max and Recompute need the recompute step).
  EXPECT_TRUE(q.needs_recompute());
  EXPECT_FALSE(q.global());
}

TEST(Serialize, ReserializingIsByteIdentical) {
  const std::string text = serialize(rich_plan());
  EXPECT_EQ(text, serialize(deserialize(text)));
}

TEST(Serialize, DefaultPlanRoundTrips) {
  const ViewPlan p;
  const ViewPlan q = deserialize(serialize(p));
  expect_plan_eq(p, q);
  EXPECT_EQ(-1, q.root);
  EXPECT_EQ(-1, q.locator);
}

TEST(Serialize, EveryJoinAndAggregateKindRoundTrips) {
  for (JoinKind k : {JoinKind::Leaf, JoinKind::Inner, JoinKind::Left, JoinKind::Right, JoinKind::Full}) {
    ViewPlan p;
    p.joins.resize(1);
    p.joins[0].kind = k;
    EXPECT_EQ(k, deserialize(serialize(p)).joins.at(0).kind);
  }
  for (AggKind k : {AggKind::CountStar, AggKind::Count, AggKind::Sum, AggKind::Avg, AggKind::Min, AggKind::Max,
                    AggKind::BoolAnd, AggKind::BoolOr, AggKind::Recompute}) {
    ViewPlan p;
    p.aggs.resize(1);
    p.aggs[0].kind = k;
    EXPECT_EQ(k, deserialize(serialize(p)).aggs.at(0).kind);
  }
}

// The enums are stored by number: reordering them would silently change the
// meaning of every stored plan (bump kFormat instead).
TEST(Serialize, StoredEnumNumbersArePinned) {
  EXPECT_EQ(0, static_cast<int>(JoinKind::Leaf));
  EXPECT_EQ(1, static_cast<int>(JoinKind::Inner));
  EXPECT_EQ(2, static_cast<int>(JoinKind::Left));
  EXPECT_EQ(3, static_cast<int>(JoinKind::Right));
  EXPECT_EQ(4, static_cast<int>(JoinKind::Full));
  EXPECT_EQ(0, static_cast<int>(AggKind::CountStar));
  EXPECT_EQ(1, static_cast<int>(AggKind::Count));
  EXPECT_EQ(2, static_cast<int>(AggKind::Sum));
  EXPECT_EQ(3, static_cast<int>(AggKind::Avg));
  EXPECT_EQ(4, static_cast<int>(AggKind::Min));
  EXPECT_EQ(5, static_cast<int>(AggKind::Max));
  EXPECT_EQ(6, static_cast<int>(AggKind::BoolAnd));
  EXPECT_EQ(7, static_cast<int>(AggKind::BoolOr));
  EXPECT_EQ(8, static_cast<int>(AggKind::Recompute));
}

// The byte layout of format 5 is persisted: any change to it must bump the
// format number, so that old plans are rejected instead of misread.
TEST(Serialize, FormatFiveLayoutIsPinned) {
  ViewPlan p;
  p.name = "v";
  p.oid = 7;
  p.leaves.resize(1);
  p.leaves[0].alias = "l1";
  p.leaves[0].relation = "t";
  p.leaves[0].relid = 9;
  p.leaves[0].columns = {"a"};
  p.joins.resize(1);
  p.joins[0].leaf = 0;
  p.root = 0;
  p.columns = {"a"};
  p.types = {"int4"};
  p.locator = 0;
  p.outputs = {"l1.a"};
  p.key_provable = true;
  // One line per part of the layout, kept as written.
  // clang-format off
  const std::string want =
      "1:5"                                       // format
      "1:v" "1:7" "0:" "0:" "0:" "1:0"            // name oid state keylock key_type outer
      "1:1" "2:l1" "1:t" "1:9" "1:0" "1:1" "1:a" "0:"  // 1 leaf: alias relation relid is_view columns key
      "1:1" "1:0" "1:0" "2:-1" "2:-1" "0:"        // 1 join: kind leaf left right on
      "1:0" "0:"                                  // root where
      "1:1" "1:a" "1:1" "4:int4" "1:0"            // columns types locator
      "1:1" "4:l1.a"                              // outputs
      "1:0" "1:0" "1:0" "1:0" "1:0"               // aggregate groups group_types group_columns aggs
      "1:0" "0:"                                  // finals having
      "2:-1"                                      // view_key
      "1:1"                                       // extreme_counts
      "1:0"                                       // unique_key
      "1:1";                                      // key_provable
  // clang-format on
  EXPECT_EQ(want, serialize(p));
  expect_plan_eq(p, deserialize(want));
  // Format 4 (no key_provable) is still read: a key proven then is provable,
  // any other is not.
  std::string four = want.substr(0, want.size() - 3);
  four[2] = '4';
  EXPECT_FALSE(deserialize(four).key_provable);
  std::string four_keyed = four;
  four_keyed.replace(four_keyed.size() - 3, 3, "1:1");
  EXPECT_TRUE(deserialize(four_keyed).unique_key);
  EXPECT_TRUE(deserialize(four_keyed).key_provable);
  // Format 3 (no unique_key) is still read: its views use the general keyed
  // maintenance.
  std::string three = four.substr(0, four.size() - 3);
  three[2] = '3';
  EXPECT_FALSE(deserialize(three).unique_key);
  EXPECT_TRUE(deserialize(three).extreme_counts);
  // Format 2 (no extreme_counts) is still read: its MIN/MAX state has no counts.
  std::string two = three.substr(0, three.size() - 3);
  two[2] = '2';
  ViewPlan old = deserialize(two);
  EXPECT_FALSE(old.extreme_counts);
  EXPECT_EQ(p.view_key, old.view_key);
}

// --- corrupt input -------------------------------------------------------

TEST(SerializeCorrupt, EmptyInputThrows) { EXPECT_ANY_THROW(deserialize("")); }

TEST(SerializeCorrupt, EveryTruncationThrows) {
  const std::string text = serialize(rich_plan());
  ASSERT_GT(text.size(), 100u);
  for (std::size_t n = 0; n < text.size(); ++n) {
    SCOPED_TRACE("prefix of " + std::to_string(n) + " of " + std::to_string(text.size()) + " bytes");
    EXPECT_ANY_THROW(deserialize(text.substr(0, n)));
  }
}

TEST(SerializeCorrupt, WrongFormatNumberThrows) {
  const std::string text = serialize(rich_plan());
  ASSERT_EQ("1:5", text.substr(0, 3));
  EXPECT_THROW(deserialize("1:0" + text.substr(3)), std::runtime_error);
  EXPECT_THROW(deserialize("1:1" + text.substr(3)), std::runtime_error);
  EXPECT_THROW(deserialize("1:2" + text.substr(3)), std::runtime_error);
  EXPECT_THROW(deserialize("1:3" + text.substr(3)), std::runtime_error);
  EXPECT_THROW(deserialize("1:4" + text.substr(3)), std::runtime_error);
  EXPECT_THROW(deserialize("1:6" + text.substr(3)), std::runtime_error);
  EXPECT_THROW(deserialize("2:-1" + text.substr(3)), std::runtime_error);
  EXPECT_ANY_THROW(deserialize("1:x" + text.substr(3)));
}

TEST(SerializeCorrupt, TrailingDataThrows) {
  const std::string text = serialize(rich_plan());
  EXPECT_THROW(deserialize(text + "0:"), std::runtime_error);
  EXPECT_THROW(deserialize(text + "x"), std::runtime_error);
  EXPECT_THROW(deserialize(text + "\n"), std::runtime_error);
  EXPECT_THROW(deserialize(text + text), std::runtime_error);
}

TEST(SerializeCorrupt, LengthBeyondEndThrows) {
  // The having field claims more bytes than are left in the input.
  ViewPlan p;
  p.having = "abc";
  std::string text = serialize(p);
  std::size_t at = text.rfind("3:abc");
  ASSERT_NE(std::string::npos, at);
  text.replace(at, 1, "9");
  EXPECT_THROW(deserialize(text), std::runtime_error);
}

TEST(SerializeCorrupt, NonNumericLengthThrows) {
  std::string text = serialize(ViewPlan{});
  text[0] = 'x';  // "x:1..."
  EXPECT_ANY_THROW(deserialize(text));
}

TEST(SerializeCorrupt, NegativeCountThrows) {
  // leaves count -1 must not be taken as a huge vector size that "works".
  ViewPlan p;
  std::string text = serialize(p);
  // format, name, oid, state, keylock, key_type, outer, then the leaf count.
  // clang-format off
  const std::string head = "1:5" "0:" "1:0" "0:" "0:" "0:" "1:0";
  // clang-format on
  ASSERT_EQ(head + "1:0", text.substr(0, head.size() + 3));
  EXPECT_ANY_THROW(deserialize(head + "2:-1" + text.substr(head.size() + 3)));
}

// BUG (src/plan/serialize.cpp, Reader::str): a negative length is parsed by
// std::stoul, which wraps it to SIZE_MAX - n + 1; the bounds check
// `colon + 1 + len > in_.size()` then overflows and passes, and the reader
// moves *backwards*.  "-2:" followed by two bytes is read as a name holding
// the rest of the plan, then those two bytes are re-read as the oid, and the
// whole corrupt plan is accepted.
TEST(SerializeCorrupt, NegativeLengthThrows) {
  const std::string text = serialize(rich_plan());
  // Replace the name field with "-2:42", which should be rejected.
  const ViewPlan p = rich_plan();
  const std::string name_field = std::to_string(p.name.size()) + ":" + p.name;
  const std::string oid_field = "10:4294967295";
  ASSERT_EQ(name_field + oid_field, text.substr(3, name_field.size() + oid_field.size()));
  // clang-format off
  const std::string corrupt = "1:5" "-2:42" + text.substr(3 + name_field.size() + oid_field.size());
  // clang-format on
  EXPECT_ANY_THROW({
    ViewPlan q = deserialize(corrupt);
    ADD_FAILURE() << "accepted with name of " << q.name.size() << " bytes and oid " << q.oid;
  });
}

// A number with trailing garbage ("5:12abc") or a flag other than 0/1 is
// rejected, not read as far as it parses.
TEST(SerializeCorrupt, NumberWithTrailingGarbageThrows) {
  ViewPlan p;
  p.oid = 12;
  std::string text = serialize(p);
  // clang-format off
  const std::string head = "1:5" "0:";
  // clang-format on
  ASSERT_EQ(head + "2:12", text.substr(0, head.size() + 4));
  const std::string corrupt = head + "5:12abc" + text.substr(head.size() + 4);
  EXPECT_ANY_THROW({
    ViewPlan q = deserialize(corrupt);
    ADD_FAILURE() << "accepted with oid " << q.oid;
  });
}

}  // namespace
}  // namespace ivm::plan

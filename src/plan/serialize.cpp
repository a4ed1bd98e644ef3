// serialize.cpp: a ViewPlan round-trips through a small length-prefixed text
// format, stored in ivm.views.plan, so that any backend can maintain a view
// without re-analyzing its query under a different search_path.
#include "plan/ir.hpp"

#include <stdexcept>

namespace ivm::plan {

namespace {

class Writer {
 public:
  void str(const std::string& s) {
    out_ += std::to_string(s.size());
    out_ += ':';
    out_ += s;
  }
  void num(long long v) { str(std::to_string(v)); }
  void strs(const std::vector<std::string>& v) {
    num(static_cast<long long>(v.size()));
    for (const auto& s : v) str(s);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(const std::string& in) : in_(in) {}
  std::string str() {
    std::size_t colon = in_.find(':', pos_);
    if (colon == std::string::npos || colon == pos_) throw std::runtime_error("corrupt view plan");
    std::size_t len = 0;
    for (std::size_t i = pos_; i < colon; ++i) {
      char c = in_[i];
      if (c < '0' || c > '9' || len > in_.size()) throw std::runtime_error("corrupt view plan: bad length");
      len = len * 10 + static_cast<std::size_t>(c - '0');
    }
    if (len > in_.size() - colon - 1) throw std::runtime_error("corrupt view plan");
    std::string s = in_.substr(colon + 1, len);
    pos_ = colon + 1 + len;
    return s;
  }
  long long num() {
    std::string s = str();
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(s, &used);
    } catch (const std::exception&) {
      throw std::runtime_error("corrupt view plan: bad number");
    }
    if (used != s.size()) throw std::runtime_error("corrupt view plan: bad number");
    return v;
  }
  // count: a number of items, which cannot exceed what is left to read.
  std::size_t count() {
    long long n = num();
    if (n < 0 || static_cast<std::size_t>(n) > in_.size() - pos_)
      throw std::runtime_error("corrupt view plan: bad count");
    return static_cast<std::size_t>(n);
  }
  bool flag() {
    long long v = num();
    if (v != 0 && v != 1) throw std::runtime_error("corrupt view plan: bad flag");
    return v == 1;
  }
  std::vector<std::string> strs() {
    std::vector<std::string> v(count());
    for (auto& s : v) s = str();
    return v;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  const std::string& in_;
  std::size_t pos_ = 0;
};

constexpr long long kFormat = 5;

}  // namespace

bool ViewPlan::needs_recompute() const {
  for (const auto& a : aggs)
    if (a.kind == AggKind::Min || a.kind == AggKind::Max || a.kind == AggKind::Recompute) return true;
  return false;
}

std::string serialize(const ViewPlan& p) {
  Writer w;
  w.num(kFormat);
  w.str(p.name);
  w.num(p.oid);
  w.str(p.state);
  w.str(p.keylock);
  w.str(p.key_type);
  w.num(p.outer);
  w.num(static_cast<long long>(p.leaves.size()));
  for (const auto& l : p.leaves) {
    w.str(l.alias);
    w.str(l.relation);
    w.num(l.relid);
    w.num(l.is_view);
    w.strs(l.columns);
    w.str(l.key);
  }
  w.num(static_cast<long long>(p.joins.size()));
  for (const auto& j : p.joins) {
    w.num(static_cast<long long>(j.kind));
    w.num(j.leaf);
    w.num(j.left);
    w.num(j.right);
    w.str(j.on);
  }
  w.num(p.root);
  w.str(p.where);
  w.strs(p.columns);
  w.strs(p.types);
  w.num(p.locator);
  w.strs(p.outputs);
  w.num(p.aggregate);
  w.strs(p.groups);
  w.strs(p.group_types);
  w.num(static_cast<long long>(p.group_columns.size()));
  for (int c : p.group_columns) w.num(c);
  w.num(static_cast<long long>(p.aggs.size()));
  for (const auto& a : p.aggs) {
    w.num(static_cast<long long>(a.kind));
    w.str(a.arg);
    w.str(a.filter);
    w.str(a.state_type);
    w.str(a.call);
    w.num(a.distinct);
    w.num(a.interval_avg);
  }
  w.strs(p.finals);
  w.str(p.having);
  w.num(p.view_key);
  w.num(p.extreme_counts);
  w.num(p.unique_key);
  w.num(p.key_provable);
  return w.take();
}

ViewPlan deserialize(const std::string& text) {
  Reader r(text);
  long long format = r.num();
  if (format < 1 || format > kFormat) throw std::runtime_error("unknown view plan format");
  ViewPlan p;
  p.name = r.str();
  p.oid = static_cast<std::uint32_t>(r.num());
  p.state = r.str();
  p.keylock = r.str();
  p.key_type = r.str();
  p.outer = r.flag();
  p.leaves.resize(r.count());
  for (auto& l : p.leaves) {
    l.alias = r.str();
    l.relation = r.str();
    l.relid = static_cast<std::uint32_t>(r.num());
    l.is_view = r.flag();
    l.columns = r.strs();
    l.key = r.str();
  }
  p.joins.resize(r.count());
  for (auto& j : p.joins) {
    j.kind = static_cast<JoinKind>(r.num());
    j.leaf = static_cast<int>(r.num());
    j.left = static_cast<int>(r.num());
    j.right = static_cast<int>(r.num());
    j.on = r.str();
  }
  p.root = static_cast<int>(r.num());
  p.where = r.str();
  p.columns = r.strs();
  p.types = r.strs();
  p.locator = static_cast<int>(r.num());
  p.outputs = r.strs();
  p.aggregate = r.flag();
  p.groups = r.strs();
  p.group_types = r.strs();
  p.group_columns.resize(r.count());
  for (int& c : p.group_columns) c = static_cast<int>(r.num());
  p.aggs.resize(r.count());
  for (auto& a : p.aggs) {
    a.kind = static_cast<AggKind>(r.num());
    a.arg = r.str();
    a.filter = r.str();
    a.state_type = r.str();
    a.call = r.str();
    a.distinct = r.flag();
    a.interval_avg = r.flag();
  }
  p.finals = r.strs();
  p.having = r.str();
  if (format >= 2) p.view_key = static_cast<int>(r.num());  // format 1 had no view_key
  p.extreme_counts = format >= 3 ? r.flag() : false;        // nor MIN/MAX counts before 3
  p.unique_key = format >= 4 ? r.flag() : false;            // nor unique view keys before 4
  // Before 5, only a key proven at creation says it is provable.
  p.key_provable = format >= 5 ? r.flag() : p.unique_key;
  if (!r.done()) throw std::runtime_error("corrupt view plan: trailing data");
  return p;
}

}  // namespace ivm::plan

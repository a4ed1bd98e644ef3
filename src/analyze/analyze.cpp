// analyze.cpp: Query tree -> operator plan.  Every "not supported" error of
// ivm comes from this file.
#include "analyze/analyze.hpp"
#include "plan/ir.hpp"
#include "plan/sqlgen.hpp"
#include "pg/spi.hpp"

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

namespace ivm::analyze {

using pg::Error;
using pg::not_supported;
using pg::pg_call;
using plan::AggKind;
using plan::JoinKind;

namespace {

using pg::fn_cast;
using pg::Mutator;
using pg::Walker;

// ---------------------------------------------------------------------------
// Parsing

// in_query: runs f, which parses or analyzes the view's query text; an error
// positioned in that text is reported against it (as QUERY: with a cursor)
// rather than against the statement calling ivm.create_view, whose text the
// position does not belong to.
template <typename F>
auto in_query(const std::string& text, F&& f) -> decltype(f()) {
  try {
    return pg_call(std::forward<F>(f));
  } catch (const pg::PgError& e) {
    ErrorData* d = e.data();
    if (d && d->cursorpos > 0) {
      d->internalpos = d->cursorpos;
      d->internalquery = pg_call([&] { return pstrdup(text.c_str()); });
      d->cursorpos = 0;
    }
    throw;
  }
}

Query* parse_one(const std::string& text) {
  List* raw = in_query(text, [&] { return raw_parser(text.c_str(), RAW_PARSE_DEFAULT); });
  if (list_length(raw) != 1)
    throw Error(ERRCODE_INVALID_PARAMETER_VALUE, "query must be exactly one SELECT statement",
                list_length(raw) == 0 ? "The query is empty." : "The query contains several statements.");
  RawStmt* rs = linitial_node(RawStmt, raw);
  if (!IsA(rs->stmt, SelectStmt))
    throw Error(ERRCODE_FEATURE_NOT_SUPPORTED, "only SELECT statements can define incremental views");
  if (reinterpret_cast<SelectStmt*>(rs->stmt)->intoClause) not_supported("SELECT INTO is");
  return in_query(text, [&] {
    Query* q = parse_analyze_fixedparams(rs, text.c_str(), nullptr, 0, nullptr);
    List* rewritten = QueryRewrite(q);
    if (list_length(rewritten) != 1)
      ereport(ERROR,
              (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
               errmsg("rules that rewrite the query into several statements are not supported in incremental views")));
    return linitial_node(Query, rewritten);
  });
}

// ---------------------------------------------------------------------------
// Restrictions

struct MutableContext {
  Oid func = InvalidOid;
  Node* node = nullptr;  // the expression calling it
  const char* special = nullptr;
};

bool mutable_checker(Oid func, void* context) {
  if (func_volatile(func) != PROVOLATILE_IMMUTABLE) {
    static_cast<MutableContext*>(context)->func = func;
    return true;
  }
  return false;
}

// mutable_walker: finds a stable or volatile call.  Children are looked at
// first, so the innermost call is reported: in ts > now() - interval '1 day'
// that is now(), what the user wrote, not the (stable) operator around it.
bool mutable_walker(Node* node, void* context) {
  auto* cxt = static_cast<MutableContext*>(context);
  if (!node) return false;
  if (IsA(node, Query))
    return query_tree_walker(reinterpret_cast<Query*>(node), fn_cast<Walker>(mutable_walker), context, 0);
  if (expression_tree_walker(node, fn_cast<Walker>(mutable_walker), context)) return true;
  if (IsA(node, SQLValueFunction)) {
    cxt->special = "CURRENT_DATE, CURRENT_TIMESTAMP, CURRENT_USER and similar";
    return true;
  }
  if (IsA(node, NextValueExpr)) {
    cxt->special = "sequence values";
    return true;
  }
  if (check_functions_in_node(node, mutable_checker, context)) {
    cxt->node = node;
    return true;
  }
  return false;
}

// mutable_call: the offending call as the user wrote it: an operator, a cast
// or a function.
std::string mutable_call(const MutableContext& cxt) {
  return pg_call([&] {
    Node* n = cxt.node;
    if (n && (IsA(n, OpExpr) || IsA(n, DistinctExpr) || IsA(n, NullIfExpr)))
      return std::string("operator ") + format_operator(reinterpret_cast<OpExpr*>(n)->opno);
    if (n && IsA(n, ScalarArrayOpExpr))
      return std::string("operator ") + format_operator(reinterpret_cast<ScalarArrayOpExpr*>(n)->opno);
    Node* arg = nullptr;
    Oid to = InvalidOid;
    if (n && IsA(n, CoerceViaIO)) {
      arg = reinterpret_cast<Node*>(reinterpret_cast<CoerceViaIO*>(n)->arg);
      to = reinterpret_cast<CoerceViaIO*>(n)->resulttype;
    } else if (n && IsA(n, FuncExpr) && reinterpret_cast<FuncExpr*>(n)->funcformat != COERCE_EXPLICIT_CALL &&
               list_length(reinterpret_cast<FuncExpr*>(n)->args) >= 1) {
      arg = static_cast<Node*>(linitial(reinterpret_cast<FuncExpr*>(n)->args));
      to = reinterpret_cast<FuncExpr*>(n)->funcresulttype;
    }
    if (arg) return std::string("cast from ") + format_type_be(exprType(arg)) + " to " + format_type_be(to);
    return std::string("function ") + get_func_name(cxt.func) + "()";
  });
}

void check_query_shape(Query* q) {
  if (q->commandType != CMD_SELECT || q->utilityStmt)
    throw Error(ERRCODE_FEATURE_NOT_SUPPORTED, "only SELECT statements can define incremental views");
  if (q->hasRecursive) not_supported("recursive queries are");
  if (q->cteList) not_supported("WITH queries are", "Write the WITH query as a subquery in FROM.");
  if (q->hasWindowFuncs) not_supported("window functions are");
  if (q->hasTargetSRFs) not_supported("set-returning functions in the select list are");
  if (q->hasSubLinks)
    not_supported("subqueries in WHERE, HAVING or the select list are", "Use a join or a subquery in FROM instead.");
  if (q->setOperations) not_supported("UNION, INTERSECT and EXCEPT are");
  if (q->limitCount || q->limitOffset) not_supported("LIMIT, OFFSET and FETCH are");
  if (q->rowMarks || q->hasForUpdate) not_supported("FOR UPDATE and FOR SHARE are");
  if (q->groupingSets) not_supported("GROUPING SETS, ROLLUP and CUBE are");
  if (q->groupDistinct) not_supported("GROUP BY DISTINCT is");
  if (q->hasDistinctOn) not_supported("DISTINCT ON is");
  if (q->distinctClause && (q->hasAggs || q->groupClause)) not_supported("DISTINCT together with aggregates is");
  // GROUP BY a primary key lets the query read the table's other columns ungrouped; ivm's
  // aggregate state holds only the grouping expressions and the aggregates.
  if (q->constraintDeps)
    not_supported("columns that are not grouped (functionally dependent on a primary key) are",
                  "Add them to GROUP BY.");
  if (q->hasModifyingCTE) not_supported("data-modifying statements are");
  MutableContext cxt;
  bool found = pg_call([&] { return query_tree_walker(q, fn_cast<Walker>(mutable_walker), &cxt, 0); });
  if (found) {
    if (cxt.special) not_supported(std::string(cxt.special) + " are");
    throw Error(ERRCODE_FEATURE_NOT_SUPPORTED,
                "non-immutable " + mutable_call(cxt) + " is not supported in incremental views",
                "Only immutable functions may be used: the result of a stable or volatile function can change "
                "without any table changing.");
  }
}

// Vars: resets display fields after join-alias flattening and collects the
// columns each range table entry contributes.
struct VarContext {
  std::map<int, std::set<int>> columns;  // rtindex -> attnos
  int bad_attno = 1;
  int bad_varno = 0;
};

bool var_walker(Node* node, void* context) {
  auto* cxt = static_cast<VarContext*>(context);
  if (!node) return false;
  if (IsA(node, Var)) {
    Var* v = reinterpret_cast<Var*>(node);
    if (v->varlevelsup == 0) {
      if (v->varattno <= 0 && cxt->bad_attno > 0) {
        cxt->bad_attno = v->varattno;
        cxt->bad_varno = static_cast<int>(v->varno);
      }
      cxt->columns[static_cast<int>(v->varno)].insert(v->varattno);
      v->varnosyn = v->varno;
      v->varattnosyn = v->varattno;
    }
    return false;
  }
  return expression_tree_walker(node, fn_cast<Walker>(var_walker), context);
}

// varnos: the range table indexes an expression references.
bool varno_walker(Node* node, void* context) {
  if (!node) return false;
  if (IsA(node, Var)) {
    static_cast<std::set<int>*>(context)->insert(static_cast<int>(reinterpret_cast<Var*>(node)->varno));
    return false;
  }
  return expression_tree_walker(node, fn_cast<Walker>(varno_walker), context);
}

std::set<int> varnos(Node* n) {
  std::set<int> out;
  pg_call([&] { varno_walker(n, &out); });
  return out;
}

// ---------------------------------------------------------------------------
// Aggregates: replaced by Vars of the finalized state row "f".

struct FinalContext {
  List* groups;   // flattened grouping expressions
  List* aggrefs;  // distinct Aggrefs found
};

Node* final_mutator(Node* node, void* context) {
  auto* cxt = static_cast<FinalContext*>(context);
  if (!node) return nullptr;
  int i = 0;
  ListCell* lc;
  foreach (lc, cxt->groups) {
    if (equal(node, lfirst(lc))) {
      Expr* e = static_cast<Expr*>(lfirst(lc));
      return reinterpret_cast<Node*>(makeVar(1, static_cast<AttrNumber>(i + 1), exprType((Node*)e),
                                             exprTypmod((Node*)e), exprCollation((Node*)e), 0));
    }
    i++;
  }
  if (IsA(node, Aggref)) {
    Aggref* a = reinterpret_cast<Aggref*>(node);
    int n = 0;
    bool found = false;
    foreach (lc, cxt->aggrefs) {
      if (equal(node, lfirst(lc))) {
        found = true;
        break;
      }
      n++;
    }
    if (!found) cxt->aggrefs = lappend(cxt->aggrefs, node);
    return reinterpret_cast<Node*>(
        makeVar(1, static_cast<AttrNumber>(list_length(cxt->groups) + n + 1), a->aggtype, -1, a->aggcollid, 0));
  }
  return expression_tree_mutator(node, fn_cast<Mutator>(final_mutator), context);
}

// ---------------------------------------------------------------------------

std::string type_name(Oid type, int32 typmod) {
  return pg_call([&] { return format_type_with_typemod(type, typmod); });
}

std::string expr_type(Node* e) {
  return pg_call([&] { return format_type_with_typemod(exprType(e), exprTypmod(e)); });
}

bool has_equality(Oid type) {
  return pg_call([&] { return OidIsValid(lookup_type_cache(type, TYPECACHE_EQ_OPR)->eq_opr); });
}

// has_ordering: a default btree operator class, which the indexes ivm builds on group
// columns, join keys and the view's locator column need (xid, cid and aclitem have only
// hash equality).
bool has_ordering(Oid type) {
  return pg_call([&] { return OidIsValid(lookup_type_cache(type, TYPECACHE_BTREE_OPFAMILY)->btree_opf); });
}

std::string qualified_name(Oid relid) {
  return pg_call(
      [&] { return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid)); });
}

class Compiler {
 public:
  Compiler(const MaterializeFn& materialize, const IsViewFn& is_view, const UniqueFn& unique_on)
      : materialize_(materialize), is_view_(is_view), unique_on_(unique_on) {}

  Analysis run(const std::string& text) {
    Query* q = parse_one(text);
    check_query_shape(q);
    pg::PinnedSearchPath pinned;
    materialize_subqueries(q);
    check_relations(q);
    flatten(q);
    Analysis out;
    out.definition = pg_call([&] { return pg_get_querydef(q, false); });
    out.querytree = pg_call([&] { return std::string(nodeToString(q)); });
    build_leaves(q, out);
    build_context(q);
    plan::ViewPlan& p = out.plan;
    p.leaves = leaves_;
    p.root = build_tree(q, reinterpret_cast<Node*>(q->jointree), p);
    if (q->jointree->quals) p.where = deparse(q->jointree->quals);
    outputs(q, p, out);
    key_class(q, p);
    find_view_key(p);
    unique_key(p);
    return out;
  }

 private:
  // Subqueries in FROM (and plain views, which the rewriter expanded into
  // subqueries) become internal ivm views, so every leaf is a stored relation.
  void materialize_subqueries(Query* q) {
    ListCell* lc;
    foreach (lc, q->rtable) {
      RangeTblEntry* rte = lfirst_node(RangeTblEntry, lc);
      if (rte->rtekind != RTE_SUBQUERY) continue;
      if (rte->lateral) not_supported("LATERAL subqueries are");
      std::string def = pg_call([&] { return pg_get_querydef(rte->subquery, false); });
      Oid relid = materialize_(def);
      pg_call([&] {
        rte->rtekind = RTE_RELATION;
        rte->relid = relid;
        rte->relkind = RELKIND_RELATION;
        rte->rellockmode = AccessShareLock;
        rte->subquery = nullptr;
        rte->security_barrier = false;
        rte->inh = false;
        rte->requiredPerms = ACL_SELECT;
        LockRelationOid(relid, AccessShareLock);
      });
    }
  }

  void check_relations(Query* q) {
    ListCell* lc;
    foreach (lc, q->rtable) {
      RangeTblEntry* rte = lfirst_node(RangeTblEntry, lc);
      switch (rte->rtekind) {
        case RTE_RELATION: break;
        case RTE_JOIN: continue;
        case RTE_FUNCTION: not_supported("functions in FROM are");
        case RTE_VALUES: not_supported("VALUES lists are");
        case RTE_CTE: not_supported("WITH queries are");
        case RTE_TABLEFUNC: not_supported("table functions are");
        case RTE_RESULT: not_supported("queries without a FROM clause are");
        default: not_supported("this kind of FROM item is");
      }
      if (rte->lateral) not_supported("LATERAL is");
      if (rte->tablesample) not_supported("TABLESAMPLE is");
      std::string name = qualified_name(rte->relid);
      char relkind = rte->relkind;
      char persistence = 0;
      bool partition = false;
      pg_call([&] {
        Relation r = table_open(rte->relid, AccessShareLock);
        persistence = r->rd_rel->relpersistence;
        partition = r->rd_rel->relispartition;
        table_close(r, AccessShareLock);
      });
      bool catalog = pg_call([&] { return IsCatalogNamespace(get_rel_namespace(rte->relid)); });
      std::string nsp = pg_call([&] { return std::string(get_namespace_name(get_rel_namespace(rte->relid))); });
      if (relkind == RELKIND_PARTITIONED_TABLE) not_supported("partitioned table " + name + " is");
      // Statement triggers see one table of an inheritance tree: a statement
      // on a parent fires the parent's (with its children's rows in the
      // transition tables, even for FROM ONLY readers), never a child's.
      if (pg_call([&] { return find_inheritance_children(rte->relid, NoLock) != NIL; }))
        not_supported("table " + name + " with inheritance children is",
                      "Statements on " + name + " also change its children, and its triggers cannot tell them apart.");
      if (partition)
        not_supported("partition " + name + " is",
                      "Rows written through its partitioned table do not fire its triggers.");
      if (pg_call([&] { return has_superclass(rte->relid); }))
        not_supported("inheritance child table " + name + " is",
                      "Statements on its parent table change its rows without firing its triggers.");
      if (relkind == RELKIND_FOREIGN_TABLE) not_supported("foreign table " + name + " is");
      if (relkind == RELKIND_MATVIEW)
        not_supported("materialized view " + name + " is", "Create it with ivm.create_view to read it incrementally.");
      if (relkind == RELKIND_SEQUENCE) not_supported("sequence " + name + " is");
      if (relkind != RELKIND_RELATION) not_supported("relation " + name + " of this kind is");
      if (catalog || nsp == "information_schema") not_supported("system catalog " + name + " is");
      if (nsp == "ivm" || (nsp == "ivm_state" && !is_view_(rte->relid)))
        not_supported("ivm's own table " + name + " is");
      if (persistence == RELPERSISTENCE_TEMP) not_supported("temporary table " + name + " is");
      // Crash recovery empties an unlogged table without firing a trigger.
      if (persistence == RELPERSISTENCE_UNLOGGED)
        not_supported(
            "unlogged table " + name + " is",
            "After a crash PostgreSQL empties it without telling ivm; make it logged with ALTER TABLE ... SET LOGGED.");
    }
  }

  void flatten(Query* q) {
    pg_call([&] {
      q->targetList = (List*)flatten_join_alias_vars(q, (Node*)q->targetList);
      q->jointree = (FromExpr*)flatten_join_alias_vars(q, (Node*)q->jointree);
      q->havingQual = flatten_join_alias_vars(q, q->havingQual);
    });
    VarContext cxt;
    pg_call([&] {
      var_walker((Node*)q->targetList, &cxt);
      var_walker((Node*)q->jointree, &cxt);
      var_walker(q->havingQual, &cxt);
    });
    if (cxt.bad_attno < 0) {
      std::string name =
          pg_call([&] { return std::string(NameStr(SystemAttributeDefinition(cxt.bad_attno)->attname)); });
      not_supported("system column " + name + " is");
    }
    if (cxt.bad_attno == 0) not_supported("whole-row references are", "List the columns instead.");
    columns_ = cxt.columns;
  }

  void build_leaves(Query* q, Analysis& out) {
    std::function<void(Node*)> visit = [&](Node* n) {
      if (IsA(n, RangeTblRef)) {
        int rt = reinterpret_cast<RangeTblRef*>(n)->rtindex;
        RangeTblEntry* rte = pg_call([&] { return rt_fetch(rt, q->rtable); });
        plan::Leaf leaf;
        leaf.alias = "l" + std::to_string(leaves_.size() + 1);
        leaf.relid = rte->relid;
        leaf.relation = qualified_name(rte->relid);
        leaf.is_view = is_view_(rte->relid);
        for (int att : columns_[rt]) {
          Oid type = pg_call([&] { return get_atttype(rte->relid, static_cast<AttrNumber>(att)); });
          std::string col =
              pg_call([&] { return std::string(get_attname(rte->relid, static_cast<AttrNumber>(att), false)); });
          if (!has_equality(type))
            not_supported("column " + col + " of type " + type_name(type, -1) + " (no equality operator) is");
          leaf.columns.push_back(pg::quote_ident(col));
        }
        leaf_of_rt_[rt] = static_cast<int>(leaves_.size());
        leaves_.push_back(leaf);
        if (std::find(out.inputs.begin(), out.inputs.end(), rte->relid) == out.inputs.end())
          out.inputs.push_back(rte->relid);
      } else if (IsA(n, JoinExpr)) {
        JoinExpr* j = reinterpret_cast<JoinExpr*>(n);
        visit(j->larg);
        visit(j->rarg);
      } else if (IsA(n, FromExpr)) {
        ListCell* lc;
        foreach (lc, reinterpret_cast<FromExpr*>(n)->fromlist) visit(static_cast<Node*>(lfirst(lc)));
      }
    };
    visit(reinterpret_cast<Node*>(q->jointree));
    if (leaves_.empty()) not_supported("queries without a FROM clause are");
  }

  void build_context(Query* q) {
    pg_call([&] {
      List* rtable = NIL;
      List* names = NIL;
      int rt = 1;
      ListCell* lc;
      foreach (lc, q->rtable) {
        RangeTblEntry* rte = static_cast<RangeTblEntry*>(copyObjectImpl(lfirst(lc)));
        auto it = leaf_of_rt_.find(rt);
        if (it != leaf_of_rt_.end()) {
          rte->alias = nullptr;  // print real column names, which the leaf sources expose
          names = lappend(names, pstrdup(leaves_[static_cast<std::size_t>(it->second)].alias.c_str()));
        } else {
          names = lappend(names, psprintf("ivm_rte%d", rt));
        }
        rtable = lappend(rtable, rte);
        rt++;
      }
      PlannedStmt* ps = makeNode(PlannedStmt);
      ps->rtable = rtable;
      body_ctx_ = deparse_context_for_plan_tree(ps, names);
    });
  }

  std::string deparse(Node* e) {
    return pg_call([&] { return std::string(deparse_expression(e, body_ctx_, true, false)); });
  }

  int build_tree(Query* q, Node* n, plan::ViewPlan& p) {
    plan::JoinNode node;
    if (IsA(n, RangeTblRef)) {
      node.kind = JoinKind::Leaf;
      node.leaf = leaf_of_rt_.at(reinterpret_cast<RangeTblRef*>(n)->rtindex);
    } else if (IsA(n, JoinExpr)) {
      JoinExpr* j = reinterpret_cast<JoinExpr*>(n);
      switch (j->jointype) {
        case JOIN_INNER: node.kind = JoinKind::Inner; break;
        case JOIN_LEFT:
          node.kind = JoinKind::Left;
          p.outer = true;
          break;
        case JOIN_RIGHT:
          node.kind = JoinKind::Right;
          p.outer = true;
          break;
        case JOIN_FULL:
          node.kind = JoinKind::Full;
          p.outer = true;
          break;
        default: not_supported("this kind of join is");
      }
      node.left = build_tree(q, j->larg, p);
      node.right = build_tree(q, j->rarg, p);
      if (j->quals) node.on = deparse(j->quals);
      join_quals_[static_cast<int>(p.joins.size())] = j->quals;
    } else {
      FromExpr* f = reinterpret_cast<FromExpr*>(n);
      int acc = -1;
      ListCell* lc;
      foreach (lc, f->fromlist) {
        int child = build_tree(q, static_cast<Node*>(lfirst(lc)), p);
        if (acc < 0) {
          acc = child;
          continue;
        }
        plan::JoinNode cross;
        cross.kind = JoinKind::Inner;
        cross.left = acc;
        cross.right = child;
        p.joins.push_back(cross);
        acc = static_cast<int>(p.joins.size()) - 1;
      }
      return acc;
    }
    p.joins.push_back(node);
    return static_cast<int>(p.joins.size()) - 1;
  }

  void outputs(Query* q, plan::ViewPlan& p, Analysis& out) {
    std::vector<TargetEntry*> visible;
    ListCell* lc;
    foreach (lc, q->targetList) {
      TargetEntry* tle = lfirst_node(TargetEntry, lc);
      if (tle->resjunk) continue;
      visible.push_back(tle);
      p.columns.push_back(pg::quote_ident(tle->resname ? tle->resname : "?column?"));
      p.types.push_back(expr_type((Node*)tle->expr));
      // An anonymous record (ROW(...)) and other pseudo-types cannot be a table column.
      if (pg_call([&] { return get_typtype(exprType((Node*)tle->expr)) == TYPTYPE_PSEUDO; }))
        not_supported("output column " + p.columns.back() + " of pseudo-type " + p.types.back() + " is",
                      "Cast it to a named composite type, or list its fields as columns.");
    }
    if (visible.empty()) not_supported("queries without output columns are");
    bool aggregate = q->hasAggs || q->groupClause || q->distinctClause || q->havingQual;
    for (std::size_t i = 0; i < visible.size(); ++i) {
      Oid type = exprType((Node*)visible[i]->expr);
      if (pg_call([&] { return get_typtype(type); }) == TYPTYPE_PSEUDO)  // a table cannot store it
        not_supported("output column " + p.columns[i] + " of pseudo-type " + p.types[i] + " is");
      if (!has_equality(type))
        not_supported("output column " + p.columns[i] + " of type " + p.types[i] + " (no equality operator) is");
    }
    if (!aggregate) {
      // The locator (the view's indexed column): the first plain column, else the first
      // column, that has an ordering.
      int any = -1;
      for (std::size_t i = 0; i < visible.size(); ++i) {
        Node* e = (Node*)visible[i]->expr;
        p.outputs.push_back(deparse(e));
        output_nodes_.push_back(e);
        if (!has_ordering(exprType(e))) continue;
        if (any < 0) any = static_cast<int>(i);
        if (p.locator < 0 && IsA(e, Var)) p.locator = static_cast<int>(i);
      }
      if (p.locator < 0) p.locator = any;
      if (p.locator < 0)
        not_supported("views whose output columns all lack an ordering operator (" + p.types[0] + ") are",
                      "Add a column of an ordered type, such as a key of a table.");
      return;
    }
    p.aggregate = true;
    bool hidden_group = false;
    FinalContext fc{NIL, NIL};
    if (q->distinctClause) {
      for (std::size_t i = 0; i < visible.size(); ++i) {
        fc.groups = lappend(fc.groups, visible[i]->expr);
        p.group_columns.push_back(static_cast<int>(i));
      }
    } else {
      foreach (lc, q->groupClause) {
        SortGroupClause* sgc = lfirst_node(SortGroupClause, lc);
        TargetEntry* tle = pg_call([&] { return get_sortgroupclause_tle(sgc, q->targetList); });
        if (tle->resjunk) hidden_group = true;
        auto pos = std::find(visible.begin(), visible.end(), tle) - visible.begin();
        fc.groups = lappend(fc.groups, tle->expr);
        p.group_columns.push_back(static_cast<int>(pos));
      }
    }
    foreach (lc, fc.groups) {
      Node* g = static_cast<Node*>(lfirst(lc));
      p.groups.push_back(deparse(g));
      p.group_types.push_back(expr_type(g));
      if (!has_ordering(exprType(g)))
        not_supported(std::string(q->distinctClause ? "DISTINCT" : "GROUP BY") + " on type " + p.group_types.back() +
                      " (no ordering operator) is");
    }
    std::vector<Node*> finals;
    Node* having = nullptr;
    pg_call([&] {
      for (TargetEntry* tle : visible) finals.push_back(final_mutator((Node*)tle->expr, &fc));
      if (q->havingQual) having = final_mutator(q->havingQual, &fc);
    });
    // The finalized state row f: g0.., a0..
    List* ctx = pg_call([&] {
      List* colnames = NIL;
      for (int i = 0; i < list_length(fc.groups); i++) colnames = lappend(colnames, makeString(psprintf("g%d", i)));
      for (int i = 0; i < list_length(fc.aggrefs); i++) colnames = lappend(colnames, makeString(psprintf("a%d", i)));
      RangeTblEntry* rte = makeNode(RangeTblEntry);
      rte->rtekind = RTE_SUBQUERY;
      rte->eref = makeAlias("f", colnames);
      PlannedStmt* ps = makeNode(PlannedStmt);
      ps->rtable = list_make1(rte);
      return deparse_context_for_plan_tree(ps, list_make1(pstrdup("f")));
    });
    for (Node* f : finals)
      p.finals.push_back(pg_call([&] { return std::string(deparse_expression(f, ctx, true, false)); }));
    if (having) p.having = pg_call([&] { return std::string(deparse_expression(having, ctx, true, false)); });
    foreach (lc, fc.aggrefs) p.aggs.push_back(aggregate_of(lfirst_node(Aggref, lc)));
    if (hidden_group) wrap_hidden_groups(fc, p, out);
  }

  // wrap_hidden_groups: a view that groups by an expression it does not
  // output has no column to find a group's row by.  Its aggregate part
  // becomes an internal view exposing every group (g<i>) and aggregate (a<i>),
  // and the view itself a projection of that: the finals and HAVING already
  // read exactly those columns as f.g<i> / f.a<i>.
  void wrap_hidden_groups(const FinalContext& fc, plan::ViewPlan& p, Analysis& out) {
    std::vector<std::string> calls;
    ListCell* lc;
    foreach (lc, fc.aggrefs) calls.push_back(deparse(static_cast<Node*>(lfirst(lc))));
    std::uint32_t inner = materialize_(plan::sql_grouped_query(p, calls));
    plan::Leaf leaf;
    leaf.alias = "f";
    leaf.relid = inner;
    leaf.relation = qualified_name(inner);
    leaf.is_view = true;
    for (std::size_t i = 0; i < p.groups.size(); ++i) leaf.columns.push_back("g" + std::to_string(i));
    for (std::size_t i = 0; i < calls.size(); ++i) leaf.columns.push_back("a" + std::to_string(i));
    plan::ViewPlan spj;
    spj.leaves = {leaf};
    spj.joins = {plan::JoinNode{}};
    spj.joins[0].leaf = 0;
    spj.root = 0;
    spj.where = p.having;
    spj.columns = p.columns;
    spj.types = p.types;
    spj.outputs = p.finals;
    spj.locator = 0;
    p = spj;
    leaves_ = p.leaves;
    out.inputs = {inner};
  }

  plan::Aggregate aggregate_of(Aggref* a) {
    std::string name = pg_call([&] { return std::string(get_func_name(a->aggfnoid)); });
    bool catalog = pg_call([&] { return get_func_namespace(a->aggfnoid) == PG_CATALOG_NAMESPACE; });
    static const std::set<std::string> known{"count", "sum", "avg", "min", "max", "bool_and", "bool_or", "every"};
    if (!catalog || !known.count(name)) not_supported("aggregate function " + name + "() is");
    if (a->aggorder) not_supported("ORDER BY inside aggregate calls is");
    if (a->aggkind != AGGKIND_NORMAL) not_supported("ordered-set and hypothetical-set aggregates are");
    plan::Aggregate ag;
    ag.distinct = a->aggdistinct != NIL;
    if (a->aggfilter) ag.filter = deparse((Node*)a->aggfilter);
    Node* arg = nullptr;
    if (!a->aggstar) {
      if (list_length(a->args) != 1) not_supported("aggregate " + name + "() with several arguments is");
      arg = (Node*)linitial_node(TargetEntry, a->args)->expr;
      ag.arg = deparse(arg);
    }
    Oid argtype = arg ? exprType(arg) : InvalidOid;
    bool is_float = argtype == FLOAT4OID || argtype == FLOAT8OID;
    ag.state_type = type_name(a->aggtype, -1);
    ag.call = "pg_catalog." + name;
    auto recompute = [&] { ag.kind = AggKind::Recompute; };
    if (name == "count") {
      ag.kind = a->aggstar ? AggKind::CountStar : AggKind::Count;
      if (ag.distinct && !a->aggstar) recompute();
    } else if (name == "sum") {
      ag.kind = AggKind::Sum;
      if (ag.distinct || is_float) recompute();
    } else if (name == "avg") {
      ag.kind = AggKind::Avg;
      if (argtype == INT2OID || argtype == INT4OID)
        ag.state_type = "bigint";
      else if (argtype == INT8OID || argtype == NUMERICOID)
        ag.state_type = "numeric";
      else if (argtype == INTERVALOID) {
        ag.state_type = "interval";
        ag.interval_avg = true;
      } else
        recompute();
      if (ag.distinct) {
        recompute();
        ag.state_type = type_name(a->aggtype, -1);
      }
    } else if (name == "min" || name == "max") {
      ag.kind = name == "min" ? AggKind::Min : AggKind::Max;
      ag.distinct = false;  // min(DISTINCT x) = min(x)
      ag.state_type = expr_type(arg);
      Oid coll = exprCollation(arg);
      if (OidIsValid(coll) && coll != DEFAULT_COLLATION_OID)
        ag.state_type += " COLLATE " + pg_call([&] { return std::string(generate_collation_name(coll)); });
    } else if (name == "bool_and" || name == "every") {
      ag.kind = AggKind::BoolAnd;
      ag.state_type = "bigint";  // number of true inputs
    } else if (name == "bool_or") {
      ag.kind = AggKind::BoolOr;
      ag.state_type = "bigint";
    } else {
      not_supported("aggregate function " + name + "() is");
    }
    if (ag.kind == AggKind::Recompute) ag.state_type = type_name(a->aggtype, -1);
    return ag;
  }

  // key_class: finds one equality key shared by every join.  Outer joins
  // need it (their maintenance recomputes affected keys); inner joins use it
  // to lock per key instead of per view.
  void key_class(Query* q, plan::ViewPlan& p) {
    if (p.leaves.size() < 2) return;
    struct Item {
      int leaf;
      std::string expr;
      Node* node;
    };
    std::vector<Item> items;
    std::vector<int> parent;
    auto item = [&](int leaf, Node* n) {
      std::string text = deparse(n);
      for (std::size_t i = 0; i < items.size(); ++i)
        if (items[i].leaf == leaf && items[i].expr == text) return static_cast<int>(i);
      items.push_back({leaf, text, n});
      parent.push_back(static_cast<int>(parent.size()));
      return static_cast<int>(items.size()) - 1;
    };
    std::function<int(int)> find = [&](int x) { return parent[x] == x ? x : parent[x] = find(parent[x]); };
    std::function<std::set<int>(int)> leaves_under = [&](int n) {
      const plan::JoinNode& j = p.joins[static_cast<std::size_t>(n)];
      if (j.kind == JoinKind::Leaf) return std::set<int>{j.leaf};
      std::set<int> l = leaves_under(j.left), r = leaves_under(j.right);
      l.insert(r.begin(), r.end());
      return l;
    };
    // Equalities "x = y" with x of one leaf and y of another.
    struct Link {
      int a, b;
      OpExpr* op;
    };
    auto equalities = [&](Node* quals, const std::set<int>& left, const std::set<int>& right) {
      std::vector<Link> out;
      if (!quals) return out;
      List* conj = pg_call([&] { return make_ands_implicit((Expr*)quals); });
      ListCell* lc;
      foreach (lc, conj) {
        Node* c = static_cast<Node*>(lfirst(lc));
        if (!IsA(c, OpExpr) || list_length(reinterpret_cast<OpExpr*>(c)->args) != 2) continue;
        OpExpr* op = reinterpret_cast<OpExpr*>(c);
        Node* a = (Node*)linitial(op->args);
        Node* b = (Node*)lsecond(op->args);
        bool eq =
            pg_call([&] { return op_mergejoinable(op->opno, exprType(a)) || op_hashjoinable(op->opno, exprType(a)); });
        if (!eq) continue;
        std::set<int> va = varnos(a), vb = varnos(b);
        if (va.size() != 1 || vb.size() != 1) continue;
        int la = leaf_of_rt_.at(*va.begin()), lb = leaf_of_rt_.at(*vb.begin());
        bool across = (left.count(la) && right.count(lb)) || (left.count(lb) && right.count(la));
        if (!across) continue;
        out.push_back({item(la, a), item(lb, b), op});
      }
      return out;
    };
    std::vector<std::vector<Link>> links;  // per join node
    for (std::size_t n = 0; n < p.joins.size(); ++n) {
      const plan::JoinNode& j = p.joins[n];
      if (j.kind == JoinKind::Leaf) continue;
      auto it = join_quals_.find(static_cast<int>(n));
      links.push_back(
          equalities(it == join_quals_.end() ? nullptr : it->second, leaves_under(j.left), leaves_under(j.right)));
    }
    std::set<int> all;
    for (int i = 0; i < static_cast<int>(p.leaves.size()); ++i) all.insert(i);
    std::vector<Link> where_links;
    if (!p.outer) where_links = equalities(q->jointree->quals, all, all);
    for (const auto& l : links)
      for (const Link& k : l) parent[find(k.a)] = find(k.b);
    for (const Link& k : where_links) parent[find(k.a)] = find(k.b);
    // A class qualifies when every leaf has an item in it and, for outer
    // joins, every join node has an equality inside it.
    std::string unordered;  // the type of a key class skipped for want of an ordering
    for (std::size_t c = 0; c < items.size(); ++c) {
      if (find(static_cast<int>(c)) != static_cast<int>(c)) continue;
      std::vector<int> key(p.leaves.size(), -1);
      for (std::size_t i = 0; i < items.size(); ++i)
        if (find(static_cast<int>(i)) == static_cast<int>(c) && key[static_cast<std::size_t>(items[i].leaf)] < 0)
          key[static_cast<std::size_t>(items[i].leaf)] = static_cast<int>(i);
      if (std::count(key.begin(), key.end(), -1) > 0) continue;
      bool every_join = true;
      for (const auto& l : links) {
        bool in = false;
        for (const Link& k : l) in = in || find(k.a) == static_cast<int>(c);
        every_join = every_join && in;
      }
      if (p.outer && !every_join) continue;
      Node* first = items[static_cast<std::size_t>(key[0])].node;
      if (!has_ordering(exprType(first))) {  // the key lock table's primary key needs one
        unordered = expr_type(first);
        continue;
      }
      for (std::size_t l = 0; l < p.leaves.size(); ++l) {
        p.leaves[l].key = items[static_cast<std::size_t>(key[l])].expr;
        key_nodes_.push_back(items[static_cast<std::size_t>(key[l])].node);
      }
      for (const auto& l : links)
        for (const Link& k : l)
          if (find(k.a) == static_cast<int>(c)) key_ops_.push_back(k.op);
      p.key_type = expr_type(items[static_cast<std::size_t>(key[0])].node);
      return;
    }
    if (p.outer && !unordered.empty())
      not_supported("outer joins on a key of type " + unordered + " (no ordering operator) are");
    if (p.outer)
      not_supported("outer joins whose conditions do not all share one equality key are",
                    "Join every table on the same key, or split the query into views over views.");
    p.key_type = "boolean";  // inner joins without a common key: one lock per view
  }

  // find_view_key: for an SPJ view over outer joins, an output column that is
  // the join key of a leaf that no join null-extends (the preserved side of
  // every LEFT/RIGHT join above it, under no FULL join).  Every view row of
  // key k then shows k in that column.
  void find_view_key(plan::ViewPlan& p) {
    if (!p.outer || p.aggregate) return;
    std::function<std::set<int>(int)> preserved = [&](int n) -> std::set<int> {
      const plan::JoinNode& j = p.joins[static_cast<std::size_t>(n)];
      switch (j.kind) {
        case JoinKind::Leaf: return {j.leaf};
        case JoinKind::Left: return preserved(j.left);
        case JoinKind::Right: return preserved(j.right);
        case JoinKind::Full: return {};
        case JoinKind::Inner: {
          std::set<int> l = preserved(j.left), r = preserved(j.right);
          l.insert(r.begin(), r.end());
          return l;
        }
      }
      return {};
    };
    std::set<int> leaves = preserved(p.root);
    for (std::size_t i = 0; i < p.outputs.size() && p.view_key < 0; ++i)
      for (int l : leaves)
        if (!p.leaves[static_cast<std::size_t>(l)].key.empty() &&
            p.outputs[i] == p.leaves[static_cast<std::size_t>(l)].key)
          p.view_key = static_cast<int>(i);
  }

  // unique_key: whether every leaf of a keyed outer-join view has at most
  // one row per key value, so that the view has at most one row per key.
  // The key-class equalities must mean what the proof's equality means: the
  // operators belong to the key type's default btree family, and compare
  // under a deterministic collation (or none), whose equality is the finest;
  // a coarser join equality (a case-insensitive collation) could match two
  // rows an index keeps apart.  FULL joins are left out: an unmatched row of
  // each side can show the same key.
  void unique_key(plan::ViewPlan& p) {
    if (!p.outer && !p.aggregate && p.leaves.size() == 1) return unique_locator(p);
    if (!p.outer || p.view_key < 0 || key_nodes_.size() != p.leaves.size()) return;
    for (const auto& j : p.joins)
      if (j.kind == JoinKind::Full) return;
    for (OpExpr* op : key_ops_)
      if (OidIsValid(op->inputcollid) && !pg_call([&] { return get_collation_isdeterministic(op->inputcollid); }))
        return;
    for (std::size_t l = 0; l < p.leaves.size(); ++l) {
      if (!IsA(key_nodes_[l], Var)) return;
      const Var* v = reinterpret_cast<const Var*>(key_nodes_[l]);
      if (v->varattno <= 0) return;
      Oid family = pg_call([&] { return lookup_type_cache(v->vartype, TYPECACHE_BTREE_OPFAMILY)->btree_opf; });
      if (!OidIsValid(family)) return;
      for (OpExpr* op : key_ops_)
        if (!pg_call([&] { return op_in_opfamily(op->opno, family); })) return;
    }
    // The rest is up to the inputs, now or after a later CREATE INDEX.
    p.key_provable = true;
    for (std::size_t l = 0; l < p.leaves.size(); ++l) {
      const Var* v = reinterpret_cast<const Var*>(key_nodes_[l]);
      const plan::Leaf& leaf = p.leaves[l];
      if (leaf.is_view) {
        if (unique_on_(leaf.relid, column_name(leaf.relid, v->varattno)) == Uniqueness::None) return;
      } else if (!OidIsValid(unique_index_on(leaf.relid, v->varattno, false))) {
        return;
      }
    }
    p.unique_key = true;
  }

  // unique_locator: a view over one relation (projection and filter) that
  // shows a column holding a distinct value in every row of that relation,
  // never NULL (its primary key, or such a column of an ivm view), has one
  // row per value of that column: it becomes the locator, and a changed row
  // is found by it alone.
  void unique_locator(plan::ViewPlan& p) {
    const plan::Leaf& leaf = p.leaves[0];
    // output_nodes_ is empty for the projection over an internal aggregate
    // view that a GROUP BY key missing from the output makes.
    auto column = [&](std::size_t i) -> const Var* {
      if (i >= output_nodes_.size() || !IsA(output_nodes_[i], Var)) return nullptr;
      const Var* v = reinterpret_cast<const Var*>(output_nodes_[i]);
      return v->varattno > 0 && has_ordering(v->vartype) ? v : nullptr;
    };
    for (std::size_t i = 0; i < output_nodes_.size(); ++i) {
      const Var* v = column(i);
      if (!v) continue;
      bool strict = leaf.is_view ? unique_on_(leaf.relid, column_name(leaf.relid, v->varattno)) == Uniqueness::Strict
                                 : OidIsValid(unique_index_on(leaf.relid, v->varattno, true));
      if (!strict) continue;
      p.locator = static_cast<int>(i);
      p.unique_key = p.key_provable = true;
      return;
    }
    // No such column yet: a primary key added later on the locator's column
    // (or such a key of the view read) proves it then.
    p.key_provable = p.locator >= 0 && column(static_cast<std::size_t>(p.locator)) != nullptr;
  }

  static std::string column_name(Oid relid, AttrNumber att) {
    return pg_call([&] { return std::string(quote_identifier(get_attname(relid, att, false))); });
  }

  const MaterializeFn& materialize_;
  const IsViewFn& is_view_;
  const UniqueFn& unique_on_;
  std::vector<Node*> key_nodes_;     // per leaf, its expression of the key class
  std::vector<Node*> output_nodes_;  // SPJ views: the output expressions
  std::vector<OpExpr*> key_ops_;     // the join equalities of the key class
  std::map<int, std::set<int>> columns_;
  std::map<int, int> leaf_of_rt_;
  std::map<int, Node*> join_quals_;
  std::vector<plan::Leaf> leaves_;
  List* body_ctx_ = NIL;
};

}  // namespace

std::string querytree_of(const std::string& definition) {
  pg::PinnedSearchPath pinned;
  Query* q = parse_one(definition);
  return pg_call([&] { return std::string(nodeToString(q)); });
}

std::string strip_query(const std::string& query) {
  std::size_t b = query.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  std::size_t e = query.find_last_not_of(" \t\r\n;");
  if (e == std::string::npos || e < b) return "";
  return query.substr(b, e - b + 1);
}

std::uint32_t unique_index_on(std::uint32_t relid, int attno, bool primary) {
  return pg_call([&]() -> Oid {
    Oid family =
        lookup_type_cache(get_atttype(relid, static_cast<AttrNumber>(attno)), TYPECACHE_BTREE_OPFAMILY)->btree_opf;
    Relation rel = table_open(relid, AccessShareLock);
    List* indexes = RelationGetIndexList(rel);
    Oid found = InvalidOid;
    ListCell* lc;
    foreach (lc, indexes) {
      Oid ix = lfirst_oid(lc);
      HeapTuple tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(ix));
      if (!HeapTupleIsValid(tup)) continue;
      Form_pg_index f = reinterpret_cast<Form_pg_index>(GETSTRUCT(tup));
      // Deferrable uniqueness may be violated until commit; a partial or
      // expression index says nothing about the column's other rows.
      bool ok = f->indisunique && f->indimmediate && f->indisvalid && f->indnkeyatts == 1 &&
                f->indkey.values[0] == attno && heap_attisnull(tup, Anum_pg_index_indpred, nullptr) &&
                heap_attisnull(tup, Anum_pg_index_indexprs, nullptr);
      bool is_primary = f->indisprimary;
      ok = ok && (is_primary || !primary);
      if (ok) {
        bool isnull = false;
        Datum d = SysCacheGetAttr(INDEXRELID, tup, Anum_pg_index_indclass, &isnull);
        ok = !isnull && get_opclass_family(reinterpret_cast<oidvector*>(DatumGetPointer(d))->values[0]) == family;
      }
      ReleaseSysCache(tup);
      if (ok && (!OidIsValid(found) || is_primary)) found = ix;
    }
    list_free(indexes);
    table_close(rel, AccessShareLock);
    return found;
  });
}

Analysis analyze_query(const std::string& query, const MaterializeFn& materialize, const IsViewFn& is_view,
                       const UniqueFn& unique_on) {
  std::string text = strip_query(query);
  Compiler c(materialize, is_view, unique_on);
  return c.run(text);
}

}  // namespace ivm::analyze

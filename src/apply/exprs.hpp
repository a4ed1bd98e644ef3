// exprs.hpp: a view's expressions evaluated below SQL.
//
// The plan keeps every expression as SQL text over the leaves' aliases (l1,
// l2, ...), and the generated statements embed that text.  A statement pays
// for its executor setup on every run, whatever it reads: for the change of
// one OLTP transaction that setup is most of the cost.  Here the same text
// is parsed and analyzed once, as
//     SELECT <outputs>, <WHERE>, <join conditions> FROM <leaf> l1, <leaf> l2, ...
// into PostgreSQL's own expression trees, planned as the planner plans a
// query's expressions (expression_planner: constants folded, SQL functions
// inlined), and evaluated by the executor's expression machinery on one row:
// the leaves' rows side by side.  The values are those the statements
// compute, from the same trees.
//
// The trees are kept across transactions and dropped, as the plan cache
// drops cached plans, when a leaf relation, a function or type they use, an
// operator or a schema changes, and when ivm's catalog does.  Their executor state is
// built once per transaction, as PL/pgSQL builds that of its simple
// expressions: functions may keep state in it that is good only that long.
#pragma once
#include "plan/sqlgen.hpp"
#include "pg/pg.hpp"

namespace ivm::apply::exprs {

// Kind: which of a view's expressions a Compiled holds as its outputs.
//  - ViewRows: the view's output columns (plan::ViewPlan::outputs), each of
//    its view column's type, with the WHERE and the join conditions;
//  - AggDeltaRows: what an aggregate's change is summed by, in the order and
//    with the casts of plan::sql_agg_delta_rows (plan::agg_delta_items),
//    with the WHERE.
enum class Kind { ViewRows, AggDeltaRows };

// Compiled: the planned expressions of one view.
struct Compiled {
  TupleDesc row = nullptr;  // the leaves' row types side by side
  int nleaves = 0;
  Oid* relids = nullptr;  // per leaf, its relation
  int* offset = nullptr;  // leaf i's attribute a is the row's attribute offset[i] + a
  // per leaf, the attributes its expressions read (nused[i] of them)
  AttrNumber** used = nullptr;
  int* nused = nullptr;
  int noutputs = 0;
  Expr** outputs = nullptr;
  TupleDesc types = nullptr;  // the outputs' types, typmods and collations, as a row type
  // The rows computed from them (computed.hpp), their columns as the
  // statements name them: ViewRows: [0] __live, c0, c1, ... and [1] __m,
  // __live, c0, ...; AggDeltaRows: [1] g<j>, v<i>, f<i>, __m.
  TupleDesc result[2] = {nullptr, nullptr};
  Expr* where = nullptr;  // the WHERE clause, or nullptr
  Expr** on = nullptr;    // per node of plan::ViewPlan::joins, its condition or nullptr
  // The functions and types they use, as the plan cache records them
  // (extract_query_dependencies): a change to one of these drops them.
  int ndepends = 0;
  int* depend_cache = nullptr;    // syscache id
  uint32* depend_hash = nullptr;  // hash of the object's key
  // Their executor state, built on the first use in a transaction (in
  // TopTransactionContext) and used again for the rest of it: a statement
  // by statement transaction maintains a view once per statement.
  mutable LocalTransactionId states_for = InvalidLocalTransactionId;
  mutable ExprState** output_states = nullptr;
  mutable ExprState* where_state = nullptr;
  mutable ExprState** on_states = nullptr;
};

// compiled: p's expressions of kind `kind`, compiled on first use; nullptr
// when one of them cannot be evaluated below SQL: a subquery, a volatile
// function, a whole-row or system column, or (ViewRows) an output whose type
// is not its view column's.  A C++ function: call outside pg_call.
const Compiled* compiled(const plan::ViewPlan& p, Kind kind);

// InUse: while alive, no compiled expressions are freed (an invalidation
// arriving meanwhile, at a lock taken by the evaluation, only marks them).
class InUse {
 public:
  InUse();
  ~InUse();
  InUse(const InUse&) = delete;
  InUse& operator=(const InUse&) = delete;
};

// Evaluator: the executor state of a Compiled for one use, and the row the
// expressions read.  PostgreSQL's terms from here on: call under pg::pg_call.
struct Evaluator {
  const Compiled* c = nullptr;
  ExprContext* econtext = nullptr;
  TupleTableSlot* row = nullptr;  // virtual; cleared to all NULLs by clear_row
  ExprState** outputs = nullptr;
  ExprState* where = nullptr;
  ExprState** on = nullptr;
};

void begin(Evaluator& e, const Compiled* c, int njoins);
void end(Evaluator& e);
// clear_row: every column of the row NULL, the last row's values forgotten.
void clear_row(Evaluator& e);
// holds: whether `state` (a condition) is true on the row; nullptr is true.
bool holds(Evaluator& e, ExprState* state);
// evaluate: the outputs on the row, copied into `into`.
void evaluate(Evaluator& e, Datum* values, bool* nulls, MemoryContext into);

}  // namespace ivm::apply::exprs

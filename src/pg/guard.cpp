// guard.cpp: turning C++ exceptions into PostgreSQL errors.
#include "pg/guard.hpp"

namespace ivm::pg {

void run_guarded(void (*fn)(void*), void* arg) {
  MemoryContext cxt = CurrentMemoryContext;
  ErrorData* volatile error = nullptr;
  PG_TRY();
  { fn(arg); }
  PG_CATCH();
  {
    MemoryContextSwitchTo(cxt);
    error = CopyErrorData();
    FlushErrorState();
  }
  PG_END_TRY();
  // Thrown only now that PG_exception_stack is restored.
  if (error) throw PgError(error);
}

void raise(std::exception_ptr e) {
  // Copy what we need into palloc'd memory, then let every C++ object die
  // before ereport longjmps away.
  ErrorData* pg_error = nullptr;
  int sqlstate = ERRCODE_INTERNAL_ERROR;
  char *message = nullptr, *detail = nullptr, *hint = nullptr;
  try {
    std::rethrow_exception(e);
  } catch (const PgError& err) {
    pg_error = err.data();
  } catch (const Error& err) {
    sqlstate = err.sqlstate;
    message = pstrdup(err.message.c_str());
    detail = err.detail.empty() ? nullptr : pstrdup(err.detail.c_str());
    hint = err.hint.empty() ? nullptr : pstrdup(err.hint.c_str());
  } catch (const std::bad_alloc&) {
    sqlstate = ERRCODE_OUT_OF_MEMORY;
    message = pstrdup("out of memory in ivm");
  } catch (const std::exception& err) {
    message = psprintf("ivm internal error: %s", err.what());
  } catch (...) {
    message = pstrdup("ivm internal error");
  }
  e = nullptr;
  if (pg_error) ReThrowError(pg_error);
  ereport(ERROR, (errcode(sqlstate), errmsg_internal("%s", message), detail ? errdetail_internal("%s", detail) : 0,
                  hint ? errhint("%s", hint) : 0));
  pg_unreachable();
}

}  // namespace ivm::pg

// pure.hpp: included by every header of src/plan.  The plan layer is plain
// C++ that must build and be unit-tested without a server, so it refuses to
// compile once PostgreSQL's headers are in scope: that keeps the layering
// honest (PostgreSQL types never leak into the operator IR).
#pragma once
#ifdef POSTGRES_H
#error "src/plan must not see PostgreSQL headers: include plan headers before postgres.h"
#endif

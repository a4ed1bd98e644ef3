// worker.hpp: the background apply worker (deferred mode).
#pragma once

namespace ivm::apply {

// worker_init: defines ivm.databases and ivm.apply_interval and, when loaded
// through shared_preload_libraries, registers one worker per database.
void worker_init();

}  // namespace ivm::apply

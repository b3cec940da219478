// The core worker of the current shoal::Init session, for parts of the API outside api.cc.
#pragma once

#include "src/worker/core_worker.h"

namespace shoal::api {

// Throws shoal::Error when not initialized.
CoreWorker& CurrentCore();
CoreWorker* CurrentCoreOrNull();

}  // namespace shoal::api

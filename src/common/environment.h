// Setting environment variables in a process whose other threads read them.
//
// A worker exports each task's devices (CUDA_VISIBLE_DEVICES, the GPU memory caps, Python's
// OMP_NUM_THREADS) into its environment while its other threads run, and those threads read the
// environment: gRPC does when it makes a channel (proxy and resolver variables), the resolver's
// getaddrinfo does, so do CUDA and user code. glibc's setenv makes room for a new name by
// reallocating the array of variables, which frees the old one; a getenv walking the old array at
// that moment reads freed memory (a worker died so, in getenv under grpc::CreateCustomChannel,
// while its task thread set CUDA_VISIBLE_DEVICES for an actor's creation).
//
// PrepareEnvironment moves the variables into an array owned here, with room for kSpareSlots more
// names; SetEnvironmentVariable and UnsetEnvironmentVariable change that array in place, one pointer
// store at a time: a reader sees the old value or the new one, never freed memory (a string once
// in the environment is kept for the life of the process; equal strings are shared, so a worker
// alternating between a few values keeps a few strings). A name removed while a reader walks
// the array may be missed by that reader once, as with glibc's own unsetenv.
//
// glibc's setenv and putenv keep working after PrepareEnvironment: replacing a variable that is
// there changes one slot in place; adding a name copies the array into glibc's own (this array
// is never freed, so its readers are safe), after which SetEnvironmentVariable goes through
// glibc as before. Python's os.environ is such a caller: the worker adds names through
// SetEnvironmentVariable first (python/shoal/worker.py), then os.environ replaces them in place.
// Threading: any thread; writes are serialized here (not against other callers of setenv).
#pragma once

#include <cstddef>
#include <string>

namespace shoal {

inline constexpr size_t kSpareSlots = 256;

// Moves the environment into this module's array, once (later calls do nothing). Call before
// other threads write the environment.
void PrepareEnvironment();

// setenv(name, value, 1) and unsetenv(name), safe against concurrent readers once
// PrepareEnvironment has run (before it, or once glibc took the array back, they are setenv and
// unsetenv). `name` must be non-empty and hold no '='.
void SetEnvironmentVariable(const std::string& name, const std::string& value);
void UnsetEnvironmentVariable(const std::string& name);

}  // namespace shoal

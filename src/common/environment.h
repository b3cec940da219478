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
// names; SetEnvironmentVariable and UnsetEnvironmentVariable change it in place, one pointer store
// at a time: a reader sees the old value or the new one, never freed memory (a string once in the
// environment is kept for the life of the process; equal strings are shared, so a worker
// alternating between a few values keeps a few strings). While an entry is removed, a reader
// walking the array may miss one entry for that moment (the ones after it move down a slot), as
// with glibc's own unsetenv.
//
// glibc's setenv and putenv keep working: replacing a variable that is there changes one slot in
// place; adding a name makes glibc copy the array into one of its own (this one is never freed).
// A later SetEnvironmentVariable of a new name then copies glibc's array into a new one of this
// module's, as it does when the spare slots run out, and never adds through glibc (whose next add
// would free the array under its readers). Python's os.environ adds through glibc: the worker
// adds its own names through SetEnvironmentVariable first (python/shoal/worker.py), so that
// os.environ only replaces them in place. What user code adds itself is as safe as glibc makes it.
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
// PrepareEnvironment has run (before it they are setenv and unsetenv; an unset while environ is
// glibc's array is its unsetenv, which works in place). `name` must be non-empty and hold no '='.
void SetEnvironmentVariable(const std::string& name, const std::string& value);
void UnsetEnvironmentVariable(const std::string& name);

}  // namespace shoal

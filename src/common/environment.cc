#include "src/common/environment.h"

#include <stdlib.h>

#include <cstring>
#include <unordered_set>

#include "absl/base/attributes.h"
#include "absl/synchronization/mutex.h"

extern char** environ;

namespace shoal {
namespace {

ABSL_CONST_INIT absl::Mutex mu(absl::kConstInit);
char** slots ABSL_GUARDED_BY(mu) = nullptr;  // this module's newest array (none is ever freed)
size_t capacity ABSL_GUARDED_BY(mu) = 0;     // slots in it, the terminating null included
// Every "NAME=value" put in the array: never freed (a reader may hold one), never moved (nodes).
std::unordered_set<std::string>* strings ABSL_GUARDED_BY(mu) = nullptr;

// Readers (getenv) load the slots without a lock: each store is one aligned pointer, published
// after the string it points to is complete.
void Store(char** slot, char* value) { __atomic_store_n(slot, value, __ATOMIC_RELEASE); }

bool Names(const char* entry, const std::string& name) {
  return std::strncmp(entry, name.c_str(), name.size()) == 0 && entry[name.size()] == '=';
}

// environ as it is now (this module's array, or glibc's own once its setenv added a name).
char** Current() { return __atomic_load_n(&environ, __ATOMIC_ACQUIRE); }

// Makes environ a new array of this module's holding the `count` variables of `env` and room for
// kSpareSlots more; the array it replaces is not freed here (glibc frees its own at its next add:
// only a reader already walking it then is not covered).
void Adopt(char** env, size_t count) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
  capacity = count + kSpareSlots + 1;
  slots = new char*[capacity]();  // the slots past the last variable are null
  for (size_t i = 0; i < count; ++i) slots[i] = env[i];
  __atomic_store_n(&environ, slots, __ATOMIC_RELEASE);
}

}  // namespace

void PrepareEnvironment() {
  absl::MutexLock lock(&mu);
  if (slots != nullptr) return;
  char** env = Current();
  size_t count = 0;
  while (env != nullptr && env[count] != nullptr) ++count;
  strings = new std::unordered_set<std::string>();
  Adopt(env, count);
}

void SetEnvironmentVariable(const std::string& name, const std::string& value) {
  absl::MutexLock lock(&mu);
  if (slots == nullptr) {  // not prepared: no other thread is reading (see PrepareEnvironment)
    setenv(name.c_str(), value.c_str(), /*overwrite=*/1);
    return;
  }
  char* entry = const_cast<char*>(strings->insert(name + "=" + value).first->c_str());
  // A name that is there is replaced in place, in whichever array environ is.
  char** env = Current();
  size_t count = 0;
  for (; env != nullptr && env[count] != nullptr; ++count) {
    if (Names(env[count], name)) {
      Store(&env[count], entry);
      return;
    }
  }
  // A new name: into a free slot of this module's array; where environ is glibc's array again
  // (its setenv added a name: os.environ does), or this one is full, into a new array of this
  // module's first, never back to glibc's setenv, which frees the array under its readers.
  if (env != slots || count + 1 >= capacity) Adopt(env, count);
  Store(&slots[count], entry);  // slots[count + 1] is null already
}

void UnsetEnvironmentVariable(const std::string& name) {
  absl::MutexLock lock(&mu);
  char** env = Current();
  if (slots == nullptr || env != slots) {  // glibc's unsetenv changes its own array in place
    unsetenv(name.c_str());
    return;
  }
  size_t i = 0;
  while (slots[i] != nullptr) {
    if (!Names(slots[i], name)) {
      ++i;
      continue;
    }
    // Shift the rest down one slot, the terminating null included; the slot at i is looked at
    // again (a name may be there twice).
    for (size_t j = i; slots[j] != nullptr; ++j) Store(&slots[j], slots[j + 1]);
  }
}

}  // namespace shoal

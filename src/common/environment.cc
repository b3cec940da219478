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
char** slots ABSL_GUARDED_BY(mu) = nullptr;  // the array environ points to once prepared; never freed
size_t capacity ABSL_GUARDED_BY(mu) = 0;     // slots in it, the terminating null included
// Every "NAME=value" put in the array: never freed (a reader may hold one), never moved (nodes).
std::unordered_set<std::string>* strings ABSL_GUARDED_BY(mu) = nullptr;

// Readers (getenv) load the slots without a lock: each store is one aligned pointer, published
// after the string it points to is complete.
void Store(char** slot, char* value) { __atomic_store_n(slot, value, __ATOMIC_RELEASE); }

bool Names(const char* entry, const std::string& name) {
  return std::strncmp(entry, name.c_str(), name.size()) == 0 && entry[name.size()] == '=';
}

// Whether environ is still this module's array (glibc takes it back when its setenv adds a name).
bool Owned() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
  return slots != nullptr && __atomic_load_n(&environ, __ATOMIC_ACQUIRE) == slots;
}

}  // namespace

void PrepareEnvironment() {
  absl::MutexLock lock(&mu);
  if (slots != nullptr) return;
  size_t count = 0;
  while (environ != nullptr && environ[count] != nullptr) ++count;
  capacity = count + kSpareSlots + 1;
  slots = new char*[capacity]();  // the slots past the last variable are null
  for (size_t i = 0; i < count; ++i) slots[i] = environ[i];
  strings = new std::unordered_set<std::string>();
  __atomic_store_n(&environ, slots, __ATOMIC_RELEASE);  // the old array stays where it was: not freed
}

void SetEnvironmentVariable(const std::string& name, const std::string& value) {
  absl::MutexLock lock(&mu);
  if (!Owned()) {
    setenv(name.c_str(), value.c_str(), /*overwrite=*/1);
    return;
  }
  char* entry = const_cast<char*>(strings->insert(name + "=" + value).first->c_str());
  size_t i = 0;
  for (; slots[i] != nullptr; ++i) {
    if (Names(slots[i], name)) {
      Store(&slots[i], entry);
      return;
    }
  }
  if (i + 1 >= capacity) {  // full: glibc copies the array into its own and adds the name there
    setenv(name.c_str(), value.c_str(), /*overwrite=*/1);
    return;
  }
  Store(&slots[i], entry);  // slots[i + 1] is null already
}

void UnsetEnvironmentVariable(const std::string& name) {
  absl::MutexLock lock(&mu);
  if (!Owned()) {
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

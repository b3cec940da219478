// Which objects this worker knows, who owns them, and who still refers to them.
//
// An object is *owned* (this worker created it by Put or SubmitTask) or *borrowed* (its owner,
// another worker, was named by RegisterBorrowed). Two counts keep it in scope: local references
// (language-level handles: AddLocal/RemoveLocal) and submitted references (pending tasks that
// take it as an argument). An object enters the table with both counts at zero and leaves it
// when, after it was referenced at least once, both counts are back at zero: the call that made
// that happen answers it (OutOfScope) and the caller frees the value (and, for owned objects,
// its store copies).
// Threading: any thread (internally locked).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "src/common/ids.h"

namespace shoal {

class ReferenceCounter {
 public:
  struct OutOfScope {
    ObjectId id;
    bool owned = false;
  };

  // Adds an object this worker owns. No change if known.
  void AddOwned(const ObjectId& id);
  // Adds an object owned by the worker at `owner_address`. No change if known.
  void AddBorrowed(const ObjectId& id, const std::string& owner_address);
  bool Contains(const ObjectId& id) const;
  // Empty string for owned objects; nullopt for unknown ones.
  std::optional<std::string> OwnerAddress(const ObjectId& id) const;

  // No change for unknown ids.
  void AddLocal(const ObjectId& id);
  // Answers `id` if it left scope (and the table) with this call.
  std::optional<OutOfScope> RemoveLocal(const ObjectId& id);
  // Counts one pending task per entry of `ids` (repeats count again). Unknown ids are skipped.
  void AddSubmitted(const std::vector<ObjectId>& ids);
  // Undoes AddSubmitted; answers the ids that left scope.
  std::vector<OutOfScope> RemoveSubmitted(const std::vector<ObjectId>& ids);

  size_t size() const;

  // One entry of the table as it is now.
  struct Reference {
    ObjectId id;
    std::string owner_address;  // empty: owned here
    int64_t local = 0;
    int64_t submitted = 0;
  };
  // Every entry (the state API's objects).
  std::vector<Reference> Snapshot() const;

 private:
  struct Entry {
    std::string owner_address;  // empty: owned here
    int64_t local = 0;
    int64_t submitted = 0;
    bool referenced = false;    // a count was ever above zero
  };
  // Erases `it` if it is out of scope; answers what it erased.
  std::optional<OutOfScope> MaybeErase(absl::flat_hash_map<ObjectId, Entry>::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<ObjectId, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal

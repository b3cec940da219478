// ObjectRef<T>: a reference to a value of type T that a task returns or Put stores.
//
// A ref is a handle, not the value: pass it to other tasks (the callee receives the value,
// wherever it lives) or Get it. Copies count as references: while any copy is alive in this
// process the value is kept; when the last one goes, the runtime may free it. A default-made
// ref is nil. Refs made before a Shutdown become inert (they keep their id, count nothing).
// Threading: a ref is a value; distinct refs may be used from different threads.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "shoal/internal.h"

namespace shoal {

namespace internal {

// The type-independent half of ObjectRef: the id and its reference count.
class ObjectRefBase {
 public:
  const ObjectIdBytes& id() const { return id_; }
  std::string Hex() const { return internal::Hex(id_); }
  bool IsNil() const { return id_ == NilObjectId(); }

 protected:
  ObjectRefBase() = default;
  // Adopts the reference the runtime counted when it made the object.
  explicit ObjectRefBase(const NewObject& object) : id_(object.id), epoch_(object.epoch) {}
  ObjectRefBase(const ObjectRefBase& other) : id_(other.id_), epoch_(other.epoch_) {
    if (epoch_ != 0) AddReference(id_, epoch_);
  }
  ObjectRefBase(ObjectRefBase&& other) noexcept
      : id_(other.id_), epoch_(std::exchange(other.epoch_, 0)) {
    other.id_ = NilObjectId();
  }
  ObjectRefBase& operator=(const ObjectRefBase& other) {
    if (this != &other) *this = ObjectRefBase(other);
    return *this;
  }
  ObjectRefBase& operator=(ObjectRefBase&& other) noexcept {
    if (this != &other) {
      Release();
      id_ = std::exchange(other.id_, NilObjectId());
      epoch_ = std::exchange(other.epoch_, 0);
    }
    return *this;
  }
  ~ObjectRefBase() { Release(); }

 private:
  void Release() {
    if (epoch_ != 0) RemoveReference(id_, epoch_);
    epoch_ = 0;
  }
  ObjectIdBytes id_ = NilObjectId();
  uint64_t epoch_ = 0;  // 0: counts no reference
};

}  // namespace internal

template <typename T>
class ObjectRef : public internal::ObjectRefBase {
 public:
  using value_type = T;
  ObjectRef() = default;  // nil
  // For the runtime: adopts a freshly made object's reference.
  explicit ObjectRef(const internal::NewObject& object) : ObjectRefBase(object) {}

  friend bool operator==(const ObjectRef& a, const ObjectRef& b) { return a.id() == b.id(); }
};

namespace internal {
template <typename T>
struct IsObjectRef : std::false_type {};
template <typename T>
struct IsObjectRef<ObjectRef<T>> : std::true_type {};
}  // namespace internal

}  // namespace shoal

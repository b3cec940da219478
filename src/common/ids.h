// Fixed-size identifiers for nodes, jobs, tasks, objects, actors and workers.
//
// Each id is a byte array of a fixed length, printable as lowercase hex. Ids are either
// random (FromRandom) or derived from a parent so that the parent can be read back:
//   ActorId  = 12 random bytes + JobId (4)
//   TaskId   =  8 random bytes + ActorId (16)   (for normal tasks: 12 bytes of 0xff + JobId)
//   ObjectId = TaskId (24) + return index (4, little endian)
// Threading: values; any thread.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/hash/hash.h"
#include "absl/status/statusor.h"

namespace shoal {

// Fills `out` with `n` bytes from a per-thread generator seeded from the OS.
void FillRandom(uint8_t* out, size_t n);

template <typename Derived, size_t N>
class BaseId {
 public:
  static constexpr size_t kSize = N;

  BaseId() { bytes_.fill(0xff); }  // nil

  static Derived Nil() { return Derived(); }
  static Derived FromRandom() {
    Derived id;
    FillRandom(id.bytes_.data(), N);
    return id;
  }
  // REQUIRES nothing: wrong sizes answer InvalidArgument.
  static absl::StatusOr<Derived> FromBinary(std::string_view bin) {
    if (bin.size() != N) {
      return absl::InvalidArgumentError(
          "id must be " + std::to_string(N) + " bytes, got " + std::to_string(bin.size()));
    }
    Derived id;
    std::memcpy(id.bytes_.data(), bin.data(), N);
    return id;
  }
  static absl::StatusOr<Derived> FromHex(std::string_view hex) {
    if (hex.size() != 2 * N) {
      return absl::InvalidArgumentError("id must be " + std::to_string(2 * N) +
                                        " hex digits, got '" + std::string(hex) + "'");
    }
    Derived id;
    for (size_t i = 0; i < N; ++i) {
      int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
      if (hi < 0 || lo < 0) {
        return absl::InvalidArgumentError("not a hex id: '" + std::string(hex) + "'");
      }
      id.bytes_[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return id;
  }

  bool IsNil() const { return *this == Nil(); }
  std::string Binary() const { return std::string(reinterpret_cast<const char*>(bytes_.data()), N); }
  std::string Hex() const {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out(2 * N, '0');
    for (size_t i = 0; i < N; ++i) {
      out[2 * i] = kDigits[bytes_[i] >> 4];
      out[2 * i + 1] = kDigits[bytes_[i] & 0xf];
    }
    return out;
  }
  const uint8_t* data() const { return bytes_.data(); }

  friend bool operator==(const BaseId& a, const BaseId& b) { return a.bytes_ == b.bytes_; }
  friend bool operator!=(const BaseId& a, const BaseId& b) { return !(a == b); }
  friend bool operator<(const BaseId& a, const BaseId& b) { return a.bytes_ < b.bytes_; }
  template <typename H>
  friend H AbslHashValue(H h, const BaseId& id) {
    return H::combine_contiguous(std::move(h), id.bytes_.data(), N);
  }

 protected:
  static int HexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  std::array<uint8_t, N> bytes_;
};

class NodeId : public BaseId<NodeId, 28> {};
class WorkerId : public BaseId<WorkerId, 28> {};

class JobId : public BaseId<JobId, 4> {
 public:
  static JobId FromInt(uint32_t value);
  uint32_t ToInt() const;
};

class ActorId : public BaseId<ActorId, 16> {
 public:
  static ActorId Of(const JobId& job);  // random, within `job`
  JobId Job() const;
};

class TaskId : public BaseId<TaskId, 24> {
 public:
  static TaskId ForNormalTask(const JobId& job);  // random, not an actor's
  static TaskId ForActorTask(const ActorId& actor);
  ActorId Actor() const;
  JobId Job() const { return Actor().Job(); }
  // Whether it is an actor's task (creation or method call), not a normal task.
  bool IsForActor() const;
};

class ObjectId : public BaseId<ObjectId, 28> {
 public:
  // The id of return value `index` (1-based for returns; 0 is never a return) of `task`.
  static ObjectId FromTask(const TaskId& task, uint32_t index);
  TaskId Task() const;
  uint32_t Index() const;
};

}  // namespace shoal

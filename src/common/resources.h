// Resource quantities and sets in fixed point, and unit-instance resources (GPUs).
//
// Quantities are integers in units of 1/10000 so that 0.5 + 0.25 + 0.25 == 1 exactly and sums
// never drift. A ResourceSet maps names ("CPU", "GPU", "memory", "TPU", "node:<ip>") to
// quantities. GPUs are unit-instance resources: a vector with one entry per device, each at
// most 1.0; see ResourceInstances for how requests are placed on devices. A node's resources can
// grow and shrink at runtime (placement group bundles, bundle_resources.h): the bundle GPU names
// ("GPU_group_...") are unit-instance too, with per-device capacities of the shares the bundle
// took from the node's GPUs.
// Threading: values; not synchronized.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shoal {
namespace rpc {
class ResourceMap;
}

inline constexpr char kCPU[] = "CPU";
inline constexpr char kGPU[] = "GPU";
inline constexpr char kMemory[] = "memory";
inline constexpr char kObjectStoreMemory[] = "object_store_memory";
inline constexpr char kNodePrefix[] = "node:";
inline constexpr char kHeadNodeResource[] = "node:__internal_head__";

class FixedPoint {
 public:
  static constexpr int64_t kScale = 10000;
  // Largest accepted quantity, so that sums over many nodes cannot overflow.
  static constexpr double kMaxValue = 1e13;

  constexpr FixedPoint() = default;
  static constexpr FixedPoint FromUnits(int64_t units) { return FixedPoint(units); }
  static constexpr FixedPoint FromInt(int64_t v) { return FixedPoint(v * kScale); }
  // Rounds to the nearest 1/10000. InvalidArgument for NaN, infinity, negatives, values above
  // kMaxValue, and positive values that round to zero.
  static absl::StatusOr<FixedPoint> FromDouble(double v);

  constexpr int64_t units() const { return units_; }
  double ToDouble() const { return static_cast<double>(units_) / kScale; }
  bool IsInteger() const { return units_ % kScale == 0; }
  bool IsZero() const { return units_ == 0; }
  // Shortest decimal form: "2", "0.5", "0.3333".
  std::string ToString() const;

  friend constexpr FixedPoint operator+(FixedPoint a, FixedPoint b) { return FixedPoint(a.units_ + b.units_); }
  friend constexpr FixedPoint operator-(FixedPoint a, FixedPoint b) { return FixedPoint(a.units_ - b.units_); }
  FixedPoint& operator+=(FixedPoint o) { units_ += o.units_; return *this; }
  FixedPoint& operator-=(FixedPoint o) { units_ -= o.units_; return *this; }
  friend constexpr auto operator<=>(FixedPoint, FixedPoint) = default;

 private:
  explicit constexpr FixedPoint(int64_t units) : units_(units) {}
  int64_t units_ = 0;
};

// Named non-negative quantities. Entries that reach zero are dropped, so two sets are equal
// exactly when they hold the same non-zero amounts.
class ResourceSet {
 public:
  ResourceSet() = default;
  // Validates names (non-empty, printable, no spaces) and values (see FixedPoint::FromDouble;
  // zero is allowed and dropped).
  static absl::StatusOr<ResourceSet> FromDoubles(const std::map<std::string, double>& values);
  // Parses a JSON object of name -> number, e.g. {"TPU": 4, "accel_a100": 0.5}.
  static absl::StatusOr<ResourceSet> FromJson(std::string_view json);
  static ResourceSet FromProto(const rpc::ResourceMap& proto);

  FixedPoint Get(std::string_view name) const;
  void Set(const std::string& name, FixedPoint amount);
  bool IsEmpty() const { return amounts_.empty(); }
  // True when every quantity of `request` is at most this set's.
  bool Contains(const ResourceSet& request) const;

  void Add(const ResourceSet& other);
  // FailedPrecondition (and no change) unless Contains(other).
  absl::Status Subtract(const ResourceSet& other);

  const std::map<std::string, FixedPoint>& entries() const { return amounts_; }
  std::map<std::string, double> ToDoubles() const;
  void ToProto(rpc::ResourceMap* proto) const;
  // "{CPU: 4, GPU: 0.5}", names sorted.
  std::string ToString() const;

  friend bool operator==(const ResourceSet&, const ResourceSet&) = default;

 private:
  std::map<std::string, FixedPoint> amounts_;
};

// The per-device free shares of one unit-instance resource (GPU). Each device has a capacity of
// at most 1.0: 1.0 for the node's own GPUs, the share a bundle holds for bundle GPU names (0
// where the bundle has nothing of that device).
class ResourceInstances {
 public:
  // `count` devices of capacity 1, all free.
  explicit ResourceInstances(int64_t count);
  // One device per entry of `capacity` (each within [0, 1]), all free.
  explicit ResourceInstances(std::vector<FixedPoint> capacity);

  // Takes `amount` and answers how much of each device it took (one entry per device):
  //  - amount < 1: best fit, onto the device with the least free share that still fits
  //    (ties go to the lowest index), so fractions pack before a fresh device is opened;
  //  - amount >= 1: must be whole; takes that many devices with a full 1.0 free, lowest index
  //    first.
  // With `also`, only devices where `also` has the same share free are candidates (see Take):
  // a bundle's indexed and wildcard GPU names are taken from the same devices.
  // ResourceExhausted when it does not fit now; InvalidArgument for a non-whole amount > 1.
  absl::StatusOr<std::vector<FixedPoint>> Allocate(FixedPoint amount, const ResourceInstances* also = nullptr);
  // Takes exactly `shares` (one entry per device). ResourceExhausted, with no change, when a
  // device has less free; InvalidArgument for the wrong length.
  absl::Status Take(const std::vector<FixedPoint>& shares);
  // Gives back an allocation from Allocate. InvalidArgument, with no change, if it has the
  // wrong length or would raise a device above its capacity.
  absl::Status Free(const std::vector<FixedPoint>& allocation);
  // Adds `shares` to the devices' capacities (and free shares). InvalidArgument, with no change,
  // for the wrong length or a capacity that would pass 1.
  absl::Status Grow(const std::vector<FixedPoint>& shares);
  // Removes `shares` from the capacities and free shares. FailedPrecondition, with no change,
  // when a device has less than that free (it is in use); InvalidArgument for the wrong length.
  absl::Status Shrink(const std::vector<FixedPoint>& shares);

  const std::vector<FixedPoint>& free() const { return free_; }
  const std::vector<FixedPoint>& capacity() const { return capacity_; }
  FixedPoint TotalFree() const;
  FixedPoint TotalCapacity() const;
  size_t size() const { return free_.size(); }

 private:
  absl::Status CheckLength(const std::vector<FixedPoint>& shares) const;

  std::vector<FixedPoint> capacity_;
  std::vector<FixedPoint> free_;
};

// What one grant took from a node: amounts by name, and for unit-instance resources which
// devices and how much of each.
struct ResourceAllocation {
  ResourceSet amounts;
  std::map<std::string, std::vector<FixedPoint>> instances;
  // Indices of devices with a non-zero share of `name` (what CUDA_VISIBLE_DEVICES lists for GPU).
  std::vector<int> DeviceIndices(const std::string& name) const;
  // The name whose devices the worker is given: "GPU" when taken, else the bundle GPU name of
  // a specific bundle (GPU_group_<i>_<pg>), else a group's wildcard one; "" when no GPU.
  std::string GpuName() const;
};

// A node's total and free resources, with GPUs tracked per device. "GPU" and bundle GPU names
// (IsBundleGpuResource) are unit-instance; every other name is a plain amount.
class NodeResources {
 public:
  // `total`'s GPU amount must be whole: it is the number of devices.
  explicit NodeResources(const ResourceSet& total);

  // Takes `request` atomically: all of it or, with an error, nothing. A request holding a
  // bundle's indexed GPU name and its group's wildcard GPU name in equal amounts takes both
  // from the same devices.
  absl::StatusOr<ResourceAllocation> Allocate(const ResourceSet& request);
  absl::Status Free(const ResourceAllocation& allocation);

  // Adds `capacity` to the total and the free pool (names may be new). Every unit-instance name
  // in `capacity.amounts` needs its per-device shares in `capacity.instances` (one entry per GPU
  // device of the node, summing to the amount); "GPU" itself cannot be added. InvalidArgument,
  // with no change, otherwise or when a device's capacity would pass 1.
  absl::Status AddCapacity(const ResourceAllocation& capacity);
  // Removes what AddCapacity added; names whose total reaches zero disappear. FailedPrecondition,
  // with no change, when the free pool does not hold all of it (some is in use); InvalidArgument
  // for a malformed `capacity`, as above.
  absl::Status RemoveCapacity(const ResourceAllocation& capacity);

  const ResourceSet& total() const { return total_; }
  ResourceSet Available() const;
  const ResourceInstances* Instances(const std::string& name) const;
  // Number of the node's own GPU devices (the length of every instance vector).
  int64_t gpu_count() const { return gpu_count_; }

 private:
  bool IsUnitInstance(const std::string& name) const;
  absl::Status CheckCapacity(const ResourceAllocation& capacity) const;

  ResourceSet total_;
  int64_t gpu_count_ = 0;
  ResourceSet available_plain_;  // everything that is not unit-instance
  std::map<std::string, ResourceInstances> instances_;
};

}  // namespace shoal

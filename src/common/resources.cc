#include "src/common/resources.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "shoal/common.pb.h"
#include "src/common/bundle_resources.h"

namespace shoal {

absl::StatusOr<FixedPoint> FixedPoint::FromDouble(double v) {
  if (std::isnan(v) || std::isinf(v)) {
    return absl::InvalidArgumentError("resource quantity must be a finite number");
  }
  if (v < 0) {
    return absl::InvalidArgumentError(absl::StrCat("resource quantity must not be negative, got ", v));
  }
  if (v > kMaxValue) {
    return absl::InvalidArgumentError(absl::StrCat("resource quantity ", v, " is too large"));
  }
  int64_t units = std::llround(v * kScale);
  if (v > 0 && units == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("resource quantity ", v, " is below the smallest unit, 0.0001"));
  }
  return FixedPoint(units);
}

std::string FixedPoint::ToString() const {
  std::string out = absl::StrCat(units_ / kScale);
  int64_t frac = std::abs(units_ % kScale);
  if (units_ < 0 && units_ / kScale == 0) out = "-0";
  if (frac != 0) {
    std::string digits = std::to_string(frac);
    digits.insert(0, 4 - digits.size(), '0');
    while (!digits.empty() && digits.back() == '0') digits.pop_back();
    absl::StrAppend(&out, ".", digits);
  }
  return out;
}

namespace {
absl::Status ValidateName(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("resource name must not be empty");
  if (name.size() > 256) return absl::InvalidArgumentError("resource name is too long");
  for (unsigned char c : name) {
    if (c <= ' ' || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat("resource name '", name, "' has a space or control character"));
    }
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<ResourceSet> ResourceSet::FromDoubles(const std::map<std::string, double>& values) {
  ResourceSet out;
  for (const auto& [name, value] : values) {
    if (auto s = ValidateName(name); !s.ok()) return s;
    auto amount = FixedPoint::FromDouble(value);
    if (!amount.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("resource '", name, "': ", amount.status().message()));
    }
    out.Set(name, *amount);
  }
  return out;
}

absl::StatusOr<ResourceSet> ResourceSet::FromJson(std::string_view json) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat("resources are not valid JSON: '", std::string(json), "'"));
  }
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("resources must be a JSON object like {\"TPU\": 4}, got '", std::string(json), "'"));
  }
  std::map<std::string, double> values;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (!it.value().is_number()) {
      return absl::InvalidArgumentError(
          absl::StrCat("resource '", it.key(), "' must be a number, got ", it.value().dump()));
    }
    values[it.key()] = it.value().get<double>();
  }
  return FromDoubles(values);
}

ResourceSet ResourceSet::FromProto(const rpc::ResourceMap& proto) {
  ResourceSet out;
  for (const auto& [name, units] : proto.amounts()) {
    if (units > 0) out.Set(name, FixedPoint::FromUnits(units));
  }
  return out;
}

FixedPoint ResourceSet::Get(std::string_view name) const {
  auto it = amounts_.find(std::string(name));
  return it == amounts_.end() ? FixedPoint() : it->second;
}

void ResourceSet::Set(const std::string& name, FixedPoint amount) {
  if (amount.units() <= 0) {
    amounts_.erase(name);
  } else {
    amounts_[name] = amount;
  }
}

bool ResourceSet::Contains(const ResourceSet& request) const {
  for (const auto& [name, amount] : request.amounts_) {
    if (Get(name) < amount) return false;
  }
  return true;
}

void ResourceSet::Add(const ResourceSet& other) {
  for (const auto& [name, amount] : other.amounts_) Set(name, Get(name) + amount);
}

absl::Status ResourceSet::Subtract(const ResourceSet& other) {
  if (!Contains(other)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot take ", other.ToString(), " from ", ToString()));
  }
  for (const auto& [name, amount] : other.amounts_) Set(name, Get(name) - amount);
  return absl::OkStatus();
}

std::map<std::string, double> ResourceSet::ToDoubles() const {
  std::map<std::string, double> out;
  for (const auto& [name, amount] : amounts_) out[name] = amount.ToDouble();
  return out;
}

void ResourceSet::ToProto(rpc::ResourceMap* proto) const {
  proto->clear_amounts();
  for (const auto& [name, amount] : amounts_) (*proto->mutable_amounts())[name] = amount.units();
}

std::string ResourceSet::ToString() const {
  return absl::StrCat("{",
                      absl::StrJoin(amounts_, ", ",
                                    [](std::string* out, const auto& e) {
                                      absl::StrAppend(out, e.first, ": ", e.second.ToString());
                                    }),
                      "}");
}

// --- ResourceInstances ---

ResourceInstances::ResourceInstances(int64_t count)
    : capacity_(count, FixedPoint::FromInt(1)), free_(count, FixedPoint::FromInt(1)) {}

ResourceInstances::ResourceInstances(std::vector<FixedPoint> capacity)
    : capacity_(std::move(capacity)), free_(capacity_) {}

absl::StatusOr<std::vector<FixedPoint>> ResourceInstances::Allocate(FixedPoint amount,
                                                                    const ResourceInstances* also) {
  const FixedPoint one = FixedPoint::FromInt(1);
  std::vector<FixedPoint> taken(free_.size());
  if (amount.IsZero()) return taken;
  auto also_fits = [&](size_t i, FixedPoint share) {
    return also == nullptr || (i < also->free_.size() && also->free_[i] >= share);
  };
  if (amount < one) {
    int best = -1;
    for (size_t i = 0; i < free_.size(); ++i) {
      if (free_[i] >= amount && also_fits(i, amount) && (best < 0 || free_[i] < free_[best])) {
        best = static_cast<int>(i);
      }
    }
    if (best < 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("no device has ", amount.ToString(), " free"));
    }
    free_[best] -= amount;
    taken[best] = amount;
    return taken;
  }
  if (!amount.IsInteger()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a request above 1 device must be a whole number, got ", amount.ToString()));
  }
  int64_t want = amount.units() / FixedPoint::kScale;
  std::vector<size_t> chosen;
  for (size_t i = 0; i < free_.size() && static_cast<int64_t>(chosen.size()) < want; ++i) {
    if (free_[i] == one && also_fits(i, one)) chosen.push_back(i);
  }
  if (static_cast<int64_t>(chosen.size()) < want) {
    return absl::ResourceExhaustedError(
        absl::StrCat("wanted ", want, " whole free devices, ", chosen.size(), " are free"));
  }
  for (size_t i : chosen) {
    free_[i] = FixedPoint();
    taken[i] = one;
  }
  return taken;
}

absl::Status ResourceInstances::CheckLength(const std::vector<FixedPoint>& shares) const {
  if (shares.size() != free_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("shares name ", shares.size(),
                                                   " devices, node has ", free_.size()));
  }
  for (FixedPoint share : shares) {
    if (share < FixedPoint()) return absl::InvalidArgumentError("a device share must not be negative");
  }
  return absl::OkStatus();
}

absl::Status ResourceInstances::Take(const std::vector<FixedPoint>& shares) {
  if (auto s = CheckLength(shares); !s.ok()) return s;
  for (size_t i = 0; i < free_.size(); ++i) {
    if (free_[i] < shares[i]) {
      return absl::ResourceExhaustedError(absl::StrCat("device ", i, " has ", free_[i].ToString(),
                                                       " free, wanted ", shares[i].ToString()));
    }
  }
  for (size_t i = 0; i < free_.size(); ++i) free_[i] -= shares[i];
  return absl::OkStatus();
}

absl::Status ResourceInstances::Free(const std::vector<FixedPoint>& allocation) {
  if (allocation.size() != free_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("allocation names ", allocation.size(),
                                                    " devices, node has ", free_.size()));
  }
  for (size_t i = 0; i < free_.size(); ++i) {
    if (allocation[i] < FixedPoint() || free_[i] + allocation[i] > capacity_[i]) {
      return absl::InvalidArgumentError(absl::StrCat("freeing ", allocation[i].ToString(),
                                                     " of device ", i, " would exceed its total"));
    }
  }
  for (size_t i = 0; i < free_.size(); ++i) free_[i] += allocation[i];
  return absl::OkStatus();
}

absl::Status ResourceInstances::Grow(const std::vector<FixedPoint>& shares) {
  if (auto s = CheckLength(shares); !s.ok()) return s;
  for (size_t i = 0; i < free_.size(); ++i) {
    if (capacity_[i] + shares[i] > FixedPoint::FromInt(1)) {
      return absl::InvalidArgumentError(absl::StrCat("device ", i, " would hold ",
                                                     (capacity_[i] + shares[i]).ToString(), ", above 1"));
    }
  }
  for (size_t i = 0; i < free_.size(); ++i) {
    capacity_[i] += shares[i];
    free_[i] += shares[i];
  }
  return absl::OkStatus();
}

absl::Status ResourceInstances::Shrink(const std::vector<FixedPoint>& shares) {
  if (auto s = CheckLength(shares); !s.ok()) return s;
  for (size_t i = 0; i < free_.size(); ++i) {
    if (free_[i] < shares[i]) {
      return absl::FailedPreconditionError(absl::StrCat("device ", i, " has ", free_[i].ToString(),
                                                        " free, cannot remove ", shares[i].ToString()));
    }
  }
  for (size_t i = 0; i < free_.size(); ++i) {
    capacity_[i] -= shares[i];
    free_[i] -= shares[i];
  }
  return absl::OkStatus();
}

FixedPoint ResourceInstances::TotalFree() const {
  FixedPoint sum;
  for (FixedPoint f : free_) sum += f;
  return sum;
}

FixedPoint ResourceInstances::TotalCapacity() const {
  FixedPoint sum;
  for (FixedPoint f : capacity_) sum += f;
  return sum;
}

std::vector<int> ResourceAllocation::DeviceIndices(const std::string& name) const {
  std::vector<int> out;
  auto it = instances.find(name);
  if (it == instances.end()) return out;
  for (size_t i = 0; i < it->second.size(); ++i) {
    if (!it->second[i].IsZero()) out.push_back(static_cast<int>(i));
  }
  return out;
}

std::string ResourceAllocation::GpuName() const {
  if (instances.contains(kGPU)) return kGPU;
  std::string wildcard;
  for (const auto& [name, shares] : instances) {
    std::optional<ParsedBundleResource> parsed = ParseBundleResource(name);
    if (!parsed.has_value() || parsed->resource != kGPU) continue;
    if (parsed->index >= 0) return name;
    if (wildcard.empty()) wildcard = name;
  }
  return wildcard;
}

// --- NodeResources ---

NodeResources::NodeResources(const ResourceSet& total) : total_(total) {
  for (const auto& [name, amount] : total.entries()) {
    if (name == kGPU) {
      gpu_count_ = amount.units() / FixedPoint::kScale;
      instances_.emplace(name, ResourceInstances(gpu_count_));
    } else {
      available_plain_.Set(name, amount);
    }
  }
}

bool NodeResources::IsUnitInstance(const std::string& name) const {
  return name == kGPU || IsBundleGpuResource(name);
}

absl::StatusOr<ResourceAllocation> NodeResources::Allocate(const ResourceSet& request) {
  ResourceAllocation alloc;
  ResourceSet plain;
  for (const auto& [name, amount] : request.entries()) {
    if (!instances_.contains(name)) plain.Set(name, amount);
  }
  if (!available_plain_.Contains(plain)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "request ", request.ToString(), " does not fit in ", Available().ToString()));
  }
  // Roll back what this request already took from unit-instance resources.
  auto fail = [&](const std::string& name, const absl::Status& why) {
    for (const auto& [done_name, done] : alloc.instances) (void)instances_.at(done_name).Free(done);
    return absl::Status(why.code(), absl::StrCat(name, ": ", why.message()));
  };
  // Indexed bundle GPU names (and "GPU") first: an indexed name takes its group's wildcard
  // share from the same devices, so that the worker's devices and the accounting agree.
  for (const auto& [name, amount] : request.entries()) {
    auto it = instances_.find(name);
    if (it == instances_.end()) continue;
    std::optional<ParsedBundleResource> parsed = ParseBundleResource(name);
    if (parsed.has_value() && parsed->index < 0) continue;  // wildcard: second pass
    ResourceInstances* wildcard = nullptr;
    std::string wildcard_name;
    if (parsed.has_value()) {
      wildcard_name = BundleResourceName(kGPU, parsed->pg, -1);
      auto w = instances_.find(wildcard_name);
      if (w != instances_.end() && request.Get(wildcard_name) == amount && !alloc.instances.contains(wildcard_name)) {
        wildcard = &w->second;
      }
    }
    auto taken = it->second.Allocate(amount, wildcard);
    if (!taken.ok()) return fail(name, taken.status());
    if (wildcard != nullptr) {
      if (auto s = wildcard->Take(*taken); !s.ok()) {  // cannot fail: Allocate checked `also`
        (void)it->second.Free(*taken);
        return fail(wildcard_name, s);
      }
      alloc.instances[wildcard_name] = *taken;
    }
    alloc.instances[name] = *std::move(taken);
  }
  for (const auto& [name, amount] : request.entries()) {
    auto it = instances_.find(name);
    if (it == instances_.end() || alloc.instances.contains(name)) continue;
    auto taken = it->second.Allocate(amount);
    if (!taken.ok()) return fail(name, taken.status());
    alloc.instances[name] = *std::move(taken);
  }
  (void)available_plain_.Subtract(plain);
  alloc.amounts = request;
  return alloc;
}

absl::Status NodeResources::Free(const ResourceAllocation& allocation) {
  ResourceSet plain;
  for (const auto& [name, amount] : allocation.amounts.entries()) {
    if (!instances_.contains(name)) plain.Set(name, amount);
  }
  ResourceSet after = available_plain_;
  after.Add(plain);
  if (!total_.Contains(after)) {
    return absl::InvalidArgumentError(
        absl::StrCat("freeing ", allocation.amounts.ToString(), " would exceed the node's total"));
  }
  for (const auto& [name, devices] : allocation.instances) {
    auto it = instances_.find(name);
    if (it == instances_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("node has no unit-instance resource ", name));
    }
    std::vector<FixedPoint> check = it->second.free();
    if (devices.size() != check.size()) return it->second.Free(devices);  // reports the error
    for (size_t i = 0; i < check.size(); ++i) {
      if (devices[i] < FixedPoint() || check[i] + devices[i] > it->second.capacity()[i]) {
        return it->second.Free(devices);  // reports the error
      }
    }
  }
  for (const auto& [name, devices] : allocation.instances) {
    if (auto s = instances_.at(name).Free(devices); !s.ok()) return s;
  }
  available_plain_ = std::move(after);
  return absl::OkStatus();
}

absl::Status NodeResources::CheckCapacity(const ResourceAllocation& capacity) const {
  for (const auto& [name, amount] : capacity.amounts.entries()) {
    if (name == kGPU) return absl::InvalidArgumentError("the node's own GPUs cannot be added or removed");
    if (!IsUnitInstance(name)) continue;
    auto it = capacity.instances.find(name);
    if (it == capacity.instances.end()) {
      return absl::InvalidArgumentError(absl::StrCat(name, " needs its per-device shares"));
    }
    if (static_cast<int64_t>(it->second.size()) != gpu_count_) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", it->second.size(), " shares for ",
                                                     gpu_count_, " GPU devices"));
    }
    FixedPoint sum;
    for (FixedPoint share : it->second) {
      if (share < FixedPoint()) return absl::InvalidArgumentError(absl::StrCat(name, ": a negative share"));
      sum += share;
    }
    if (sum != amount) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": shares sum to ", sum.ToString(), ", not ",
                                                     amount.ToString()));
    }
  }
  for (const auto& [name, shares] : capacity.instances) {
    if (capacity.amounts.Get(name).IsZero() && !std::all_of(shares.begin(), shares.end(),
                                                            [](FixedPoint f) { return f.IsZero(); })) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": shares without an amount"));
    }
  }
  return absl::OkStatus();
}

absl::Status NodeResources::AddCapacity(const ResourceAllocation& capacity) {
  if (auto s = CheckCapacity(capacity); !s.ok()) return s;
  for (const auto& [name, amount] : capacity.amounts.entries()) {
    if (!IsUnitInstance(name)) continue;
    auto it = instances_.find(name);
    const std::vector<FixedPoint>& shares = capacity.instances.at(name);
    for (size_t i = 0; i < shares.size(); ++i) {
      FixedPoint have = it == instances_.end() ? FixedPoint() : it->second.capacity()[i];
      if (have + shares[i] > FixedPoint::FromInt(1)) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": device ", i, " would hold ",
                                                       (have + shares[i]).ToString(), ", above 1"));
      }
    }
  }
  for (const auto& [name, amount] : capacity.amounts.entries()) {
    total_.Set(name, total_.Get(name) + amount);
    if (!IsUnitInstance(name)) {
      available_plain_.Set(name, available_plain_.Get(name) + amount);
      continue;
    }
    auto it = instances_.find(name);
    if (it == instances_.end()) {
      instances_.emplace(name, ResourceInstances(capacity.instances.at(name)));
    } else {
      (void)it->second.Grow(capacity.instances.at(name));  // checked above
    }
  }
  return absl::OkStatus();
}

absl::Status NodeResources::RemoveCapacity(const ResourceAllocation& capacity) {
  if (auto s = CheckCapacity(capacity); !s.ok()) return s;
  for (const auto& [name, amount] : capacity.amounts.entries()) {
    if (!IsUnitInstance(name)) {
      if (available_plain_.Get(name) < amount) {
        return absl::FailedPreconditionError(absl::StrCat("cannot remove ", amount.ToString(), " of ", name,
                                                          ": ", available_plain_.Get(name).ToString(), " is free"));
      }
      continue;
    }
    auto it = instances_.find(name);
    if (it == instances_.end()) {
      return absl::FailedPreconditionError(absl::StrCat("the node has no ", name));
    }
    ResourceInstances trial = it->second;
    if (auto s = trial.Shrink(capacity.instances.at(name)); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(name, ": ", s.message()));
    }
  }
  for (const auto& [name, amount] : capacity.amounts.entries()) {
    total_.Set(name, total_.Get(name) - amount);
    if (!IsUnitInstance(name)) {
      available_plain_.Set(name, available_plain_.Get(name) - amount);
      continue;
    }
    auto it = instances_.find(name);
    (void)it->second.Shrink(capacity.instances.at(name));  // checked above
    if (it->second.TotalCapacity().IsZero()) instances_.erase(it);
  }
  return absl::OkStatus();
}

ResourceSet NodeResources::Available() const {
  ResourceSet out = available_plain_;
  for (const auto& [name, inst] : instances_) out.Set(name, inst.TotalFree());
  return out;
}

const ResourceInstances* NodeResources::Instances(const std::string& name) const {
  auto it = instances_.find(name);
  return it == instances_.end() ? nullptr : &it->second;
}

}  // namespace shoal

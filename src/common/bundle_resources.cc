#include "src/common/bundle_resources.h"

#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace shoal {
namespace {

constexpr std::string_view kGroupInfix = "_group_";
constexpr size_t kHexLength = PlacementGroupId::kSize * 2;

}  // namespace

std::string BundleResourceName(std::string_view resource, const PlacementGroupId& pg, int index) {
  std::string name(resource);
  name += kGroupInfix;
  if (index >= 0) absl::StrAppend(&name, index, "_");
  return name + pg.Hex();
}

namespace {

// The parts of a bundle-formatted name, as views into it; false when it is not one. Allocates
// nothing: the GCS asks this of every resource name of every node when it places bundles.
bool SplitBundleName(std::string_view name, std::string_view* resource, int* index, std::string_view* hex) {
  // <resource>_group_<pg>  or  <resource>_group_<index>_<pg>, read from the right.
  if (name.size() < kHexLength + kGroupInfix.size() + 1) return false;
  *hex = name.substr(name.size() - kHexLength);
  for (char c : *hex) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  std::string_view rest = name.substr(0, name.size() - kHexLength);  // ends with '_'
  if (rest.size() > kGroupInfix.size() && rest.substr(rest.size() - kGroupInfix.size()) == kGroupInfix) {
    *resource = rest.substr(0, rest.size() - kGroupInfix.size());
    *index = -1;
    return true;
  }
  // <resource>_group_<digits>_
  if (rest.empty() || rest.back() != '_') return false;
  rest.remove_suffix(1);
  size_t digits = rest.size();
  while (digits > 0 && std::isdigit(static_cast<unsigned char>(rest[digits - 1]))) --digits;
  if (digits == rest.size() || rest.size() - digits > 9) return false;
  std::string_view index_text = rest.substr(digits);
  std::string_view head = rest.substr(0, digits);
  if (head.size() <= kGroupInfix.size() || head.substr(head.size() - kGroupInfix.size()) != kGroupInfix) {
    return false;
  }
  if (!absl::SimpleAtoi(absl::string_view(index_text.data(), index_text.size()), index)) return false;
  *resource = head.substr(0, head.size() - kGroupInfix.size());
  return true;
}

}  // namespace

std::optional<ParsedBundleResource> ParseBundleResource(std::string_view name) {
  std::string_view resource, hex;
  int index = -1;
  if (!SplitBundleName(name, &resource, &index, &hex)) return std::nullopt;
  absl::StatusOr<PlacementGroupId> pg = PlacementGroupId::FromHex(hex);
  if (!pg.ok()) return std::nullopt;
  return ParsedBundleResource{std::string(resource), *pg, index};
}

bool IsBundleResource(std::string_view name) {
  std::string_view resource, hex;
  int index = -1;
  return SplitBundleName(name, &resource, &index, &hex);
}

bool IsBundleGpuResource(std::string_view name) {
  std::optional<ParsedBundleResource> parsed = ParseBundleResource(name);
  return parsed.has_value() && parsed->resource == kGPU;
}

ResourceSet FormatBundleDemand(const ResourceSet& request, const PlacementGroupId& pg, int index) {
  ResourceSet out;
  for (const auto& [name, amount] : request.entries()) {
    out.Set(BundleResourceName(name, pg, -1), amount);
    if (index >= 0) out.Set(BundleResourceName(name, pg, index), amount);
  }
  out.Set(BundleResourceName(kBundleMarker, pg, -1), kBundleMarkerPerTask);
  if (index >= 0) out.Set(BundleResourceName(kBundleMarker, pg, index), kBundleMarkerPerTask);
  return out;
}

ResourceSet CommittedBundleResources(const ResourceSet& bundle, const PlacementGroupId& pg, int index) {
  ResourceSet out;
  for (const auto& [name, amount] : bundle.entries()) {
    out.Set(BundleResourceName(name, pg, index), amount);
    out.Set(BundleResourceName(name, pg, -1), amount);
  }
  const FixedPoint marker = FixedPoint::FromInt(kBundleMarkerAmount);
  out.Set(BundleResourceName(kBundleMarker, pg, index), marker);
  out.Set(BundleResourceName(kBundleMarker, pg, -1), marker);
  return out;
}

ResourceSet WithoutBundleResources(const ResourceSet& resources) {
  ResourceSet out;
  for (const auto& [name, amount] : resources.entries()) {
    if (!IsBundleResource(name)) out.Set(name, amount);
  }
  return out;
}

absl::Status ValidateBundles(const std::vector<ResourceSet>& bundles) {
  if (bundles.empty()) {
    return absl::InvalidArgumentError("a placement group needs at least one bundle");
  }
  for (size_t i = 0; i < bundles.size(); ++i) {
    const ResourceSet& bundle = bundles[i];
    if (bundle.IsEmpty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bundle ", i, " is empty: every bundle must reserve a positive amount of some resource"));
    }
    for (const auto& [name, amount] : bundle.entries()) {
      if (IsBundleResource(name) || name.rfind(kNodePrefix, 0) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("bundle ", i, " names resource '", name, "', which a bundle cannot reserve"));
      }
    }
    FixedPoint gpu = bundle.Get(kGPU);
    if (gpu > FixedPoint::FromInt(1) && !gpu.IsInteger()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bundle ", i, " asks for ", gpu.ToString(), " GPUs: above 1 a GPU amount must be whole"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckFitsBundle(const ResourceSet& request, const std::vector<ResourceSet>& bundles,
                             int index) {
  if (index < -1 || index >= static_cast<int>(bundles.size())) {
    return absl::InvalidArgumentError(absl::StrCat("placement_group_bundle_index ", index,
                                                   " is out of range: the group has ",
                                                   bundles.size(), " bundles (valid: -1 to ",
                                                   static_cast<int>(bundles.size()) - 1, ")"));
  }
  auto fits = [&](const ResourceSet& bundle) { return bundle.Contains(request); };
  if (index >= 0) {
    if (fits(bundles[index])) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "the request ", request.ToString(), " cannot fit in bundle ", index, " of the placement group (",
        bundles[index].ToString(), ")"));
  }
  for (const ResourceSet& bundle : bundles) {
    if (fits(bundle)) return absl::OkStatus();
  }
  std::string all;
  for (const ResourceSet& bundle : bundles) absl::StrAppend(&all, all.empty() ? "" : ", ", bundle.ToString());
  return absl::InvalidArgumentError(absl::StrCat("the request ", request.ToString(),
                                                 " cannot fit in any bundle of the placement group (",
                                                 all, ")"));
}

}  // namespace shoal

// How Catch2 prints Shoal values in failed assertions.
#pragma once

#include <catch2/catch.hpp>

#include <string>

#include "src/common/ids.h"
#include "src/common/resources.h"

namespace Catch {
template <>
struct StringMaker<shoal::FixedPoint> {
  static std::string convert(shoal::FixedPoint v) { return v.ToString(); }
};
template <>
struct StringMaker<shoal::ResourceSet> {
  static std::string convert(const shoal::ResourceSet& v) { return v.ToString(); }
};
template <>
struct StringMaker<shoal::NodeId> {
  static std::string convert(const shoal::NodeId& v) { return v.Hex(); }
};
template <>
struct StringMaker<shoal::JobId> {
  static std::string convert(const shoal::JobId& v) { return v.Hex(); }
};
}  // namespace Catch

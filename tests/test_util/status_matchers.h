// Catch2 helpers for absl::Status and absl::StatusOr: printable statuses and codes, and
// assertions that show the status message when they fail.
#pragma once

#include <catch2/catch.hpp>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shoal::test {

inline const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

}  // namespace shoal::test

namespace Catch {
template <>
struct StringMaker<absl::StatusCode> {
  static std::string convert(absl::StatusCode code) { return absl::StatusCodeToString(code); }
};
template <>
struct StringMaker<absl::Status> {
  static std::string convert(const absl::Status& s) { return s.ToString(); }
};
}  // namespace Catch

// REQUIRE/CHECK that a Status or StatusOr is OK, printing it when it is not.
#define REQUIRE_OK(expr) REQUIRE(::shoal::test::StatusOf(expr) == ::absl::OkStatus())
#define CHECK_OK(expr) CHECK(::shoal::test::StatusOf(expr) == ::absl::OkStatus())
// REQUIRE/CHECK a Status or StatusOr has code `want` (e.g. kNotFound), printing the message.
#define REQUIRE_CODE(expr, want)                                  \
  do {                                                            \
    const ::absl::Status shoal_status_ = ::shoal::test::StatusOf(expr); \
    INFO("status: " << shoal_status_.ToString());                 \
    REQUIRE(shoal_status_.code() == ::absl::StatusCode::want);    \
  } while (0)
#define CHECK_CODE(expr, want)                                    \
  do {                                                            \
    const ::absl::Status shoal_status_ = ::shoal::test::StatusOf(expr); \
    INFO("status: " << shoal_status_.ToString());                 \
    CHECK(shoal_status_.code() == ::absl::StatusCode::want);      \
  } while (0)

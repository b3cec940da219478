#include "src/scheduler/label_selector.h"

#include <algorithm>
#include "absl/strings/string_view.h"
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace shoal {
namespace {

constexpr size_t kMaxName = 63;
constexpr size_t kMaxPrefix = 253;

// 1-63 characters of [A-Za-z0-9_.-], beginning and ending with an alphanumeric.
bool IsLabelName(absl::string_view s) {
  if (s.empty() || s.size() > kMaxName) return false;
  if (!absl::ascii_isalnum(s.front()) || !absl::ascii_isalnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-';
  });
}

absl::Status BadKey(const std::string& key, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("label_selector key `", key, "` is invalid: ", std::string(why)));
}

absl::Status CheckKey(const std::string& key) {
  absl::string_view name = key;
  if (size_t slash = key.rfind('/'); slash != std::string::npos) {
    absl::string_view prefix = absl::string_view(key).substr(0, slash);
    name = absl::string_view(key).substr(slash + 1);
    bool ok = !prefix.empty() && prefix.size() <= kMaxPrefix;
    for (absl::string_view part : absl::StrSplit(prefix, '.')) ok = ok && IsLabelName(part);
    if (!ok) {
      return BadKey(key,
                    "its prefix must be DNS labels joined by dots, at most 253 characters");
    }
  }
  if (!IsLabelName(name)) {
    return BadKey(key,
                  "the name must be 1-63 characters of letters, digits, '-', '_' and '.', "
                  "beginning and ending with a letter or digit");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LabelSelector> LabelSelector::Parse(const Labels& selector) {
  LabelSelector out;
  for (const auto& [key, condition] : selector) {
    if (auto s = CheckKey(key); !s.ok()) return s;
    Constraint c{.key = key, .condition = condition};
    absl::string_view rest = condition;
    if (absl::ConsumePrefix(&rest, "!")) c.negated = true;
    const bool is_in = absl::StartsWith(rest, "in(") || absl::StartsWith(rest, "(");
    if (is_in) {
      if (!absl::ConsumePrefix(&rest, "in(") || !absl::ConsumeSuffix(&rest, ")")) {
        return absl::InvalidArgumentError(
            absl::StrCat("label_selector value `", condition, "` of key `", key,
                         "` is invalid: write in(a,b) or !in(a,b)"));
      }
      for (absl::string_view value : absl::StrSplit(rest, ',')) {
        absl::ConsumePrefix(&value, " ");
        c.values.emplace_back(value);
      }
    } else {
      c.values.emplace_back(rest);
    }
    for (const std::string& value : c.values) {
      // The empty string is a valid exact value (Ray's rule), not a member of in(...).
      if (value.empty() && !is_in && !c.negated) continue;
      if (!IsLabelName(value)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "label_selector value `", condition, "` of key `", key,
            "` is invalid: a value is an optional '!', then a label value or in(v1,v2,...); "
            "each label value is 1-63 characters of letters, digits, '-', '_' and '.', "
            "beginning and ending with a letter or digit"));
      }
    }
    std::sort(c.values.begin(), c.values.end());
    c.values.erase(std::unique(c.values.begin(), c.values.end()), c.values.end());
    out.constraints_.push_back(std::move(c));
  }
  return out;
}

absl::StatusOr<LabelSelector> LabelSelector::Parse(
    const google::protobuf::Map<std::string, std::string>& selector) {
  return Parse(Labels(selector.begin(), selector.end()));
}

bool LabelSelector::Matches(const Labels& labels) const {
  for (const Constraint& c : constraints_) {
    auto it = labels.find(c.key);
    const bool in = it != labels.end() &&
                    std::binary_search(c.values.begin(), c.values.end(), it->second);
    if (in == c.negated) return false;
  }
  return true;
}

std::string LabelSelector::ToString() const {
  return absl::StrCat("{",
                      absl::StrJoin(constraints_, ", ",
                                    [](std::string* out, const Constraint& c) {
                                      absl::StrAppend(out, c.key, ": ", c.condition);
                                    }),
                      "}");
}

}  // namespace shoal

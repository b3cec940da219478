// Which nodes a task, actor or placement-group bundle may run on, by the nodes' labels: Ray's
// `label_selector`, a map from label key to a condition on that label's value.
//
// Conditions (Ray 2.5x's syntax and rules):
//   "a"          the node has the key, with value "a"
//   "!a"         the node lacks the key, or its value is not "a"
//   "in(a,b)"    the node has the key, with value "a" or "b"
//   "!in(a,b)"   the node lacks the key, or its value is neither "a" nor "b"
// Every key must match. A value inside in(...) may follow its comma with one space
// ("in(a, b)"). The empty string is a valid value and matches a label whose value is empty.
//
// Syntax (Kubernetes label syntax, as Ray validates it): a key is `[prefix/]name`, where name is
// 1-63 characters of [A-Za-z0-9_.-] that begin and end with an alphanumeric, and prefix is at
// most 253 characters of such names joined by dots. Each value is at most 63 characters with the
// name's rules. Anything else is InvalidArgument, naming the key.
//
// Threading: immutable after Parse; any thread. Ownership: values only.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/map.h"

namespace shoal {

using Labels = std::map<std::string, std::string>;

class LabelSelector {
 public:
  // Matches every node.
  LabelSelector() = default;

  // InvalidArgument, naming the key, for a malformed key or condition.
  static absl::StatusOr<LabelSelector> Parse(const Labels& selector);
  static absl::StatusOr<LabelSelector> Parse(
      const google::protobuf::Map<std::string, std::string>& selector);

  // True when `labels` satisfy every condition.
  bool Matches(const Labels& labels) const;
  bool empty() const { return constraints_.empty(); }
  // The conditions as given, in key order: {zone: in(a,b), gpu: !x}. "{}" when empty.
  std::string ToString() const;

 private:
  struct Constraint {
    std::string key;
    std::string condition;  // as written, for ToString
    bool negated = false;
    std::vector<std::string> values;  // in(...) values, or the one exact value
  };

  std::vector<Constraint> constraints_;  // in key order
};

}  // namespace shoal

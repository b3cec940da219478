#include "src/scheduler/bundle_policy.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"

namespace shoal {
namespace {

// The room on each schedulable node, in the order nodes are tried.
struct Candidate {
  NodeId id;
  NodeRoom room;
  const Labels* labels;  // the view's: valid for the whole PlaceBundles call
};
using Rooms = std::vector<Candidate>;

// The bundles with their label selectors: bundle b may go to a room only when its labels match.
struct Group {
  const std::vector<ResourceSet>& bundles;
  const std::vector<LabelSelector>& selectors;  // one per bundle, or empty: none

  size_t size() const { return bundles.size(); }
  bool Allowed(size_t b, const Candidate& c) const {
    return selectors.empty() || selectors[b].Matches(*c.labels);
  }
  // Takes bundle b from the room when the node may take it and it fits.
  bool Take(size_t b, Candidate& c) const { return Allowed(b, c) && c.room.Take(bundles[b]); }
  bool Fits(size_t b, const Candidate& c) const {
    return Allowed(b, c) && c.room.Fits(bundles[b]);
  }
};
// For each bundle, the index into Rooms of the node that takes it.
using Assignment = std::vector<size_t>;

// Every bundle on the first node that holds them all.
std::optional<Assignment> AllOnOneNode(const Rooms& rooms, const Group& group) {
  for (size_t r = 0; r < rooms.size(); ++r) {
    Candidate room = rooms[r];
    bool all = true;
    for (size_t b = 0; b < group.size() && all; ++b) all = group.Take(b, room);
    if (all) return Assignment(group.size(), r);
  }
  return std::nullopt;
}

// Each bundle on its own node: a maximum bipartite matching (augmenting paths, Kuhn), trying
// nodes in order, so it finds an assignment whenever one exists.
class DistinctMatcher {
 public:
  DistinctMatcher(const Rooms& rooms, const Group& group)
      : fits_(group.size(), std::vector<bool>(rooms.size())),
        bundle_of_room_(rooms.size(), kNone) {
    for (size_t b = 0; b < group.size(); ++b) {
      for (size_t r = 0; r < rooms.size(); ++r) fits_[b][r] = group.Fits(b, rooms[r]);
    }
  }

  std::optional<Assignment> Match() {
    if (fits_.size() > bundle_of_room_.size()) return std::nullopt;
    for (size_t b = 0; b < fits_.size(); ++b) {
      std::vector<bool> visited(bundle_of_room_.size());
      if (!Augment(b, visited)) return std::nullopt;
    }
    Assignment out(fits_.size());
    for (size_t r = 0; r < bundle_of_room_.size(); ++r) {
      if (bundle_of_room_[r] != kNone) out[bundle_of_room_[r]] = r;
    }
    return out;
  }

 private:
  static constexpr size_t kNone = static_cast<size_t>(-1);

  // Finds bundle `b` a room: a free one if any (earliest first), else one whose bundle can move.
  bool Augment(size_t b, std::vector<bool>& visited) {
    for (size_t r = 0; r < bundle_of_room_.size(); ++r) {
      if (fits_[b][r] && bundle_of_room_[r] == kNone) {
        bundle_of_room_[r] = b;
        return true;
      }
    }
    for (size_t r = 0; r < bundle_of_room_.size(); ++r) {
      if (!fits_[b][r] || visited[r]) continue;
      visited[r] = true;
      if (Augment(bundle_of_room_[r], visited)) {
        bundle_of_room_[r] = b;
        return true;
      }
    }
    return false;
  }

  std::vector<std::vector<bool>> fits_;
  std::vector<size_t> bundle_of_room_;
};

// Bundle by bundle, onto the first node in `order(bundle counts so far)` that still holds it.
template <typename Order>
std::optional<Assignment> Greedy(Rooms rooms, const Group& group, Order order) {
  Assignment out;
  std::vector<size_t> taken(rooms.size(), 0);  // bundles of this group per room
  for (size_t b = 0; b < group.size(); ++b) {
    std::optional<size_t> chosen;
    for (size_t r : order(taken)) {
      if (group.Take(b, rooms[r])) {
        chosen = r;
        break;
      }
    }
    if (!chosen.has_value()) return std::nullopt;
    out.push_back(*chosen);
    ++taken[*chosen];
  }
  return out;
}

// PACK's fallback order: rooms the group uses (in order), then the rest.
std::vector<size_t> UsedFirst(const std::vector<size_t>& taken) {
  std::vector<size_t> order(taken.size());
  for (size_t r = 0; r < order.size(); ++r) order[r] = r;
  std::stable_partition(order.begin(), order.end(), [&](size_t r) { return taken[r] > 0; });
  return order;
}

// SPREAD's fallback order: rooms holding the fewest of the group's bundles first.
std::vector<size_t> FewestFirst(const std::vector<size_t>& taken) {
  std::vector<size_t> order(taken.size());
  for (size_t r = 0; r < order.size(); ++r) order[r] = r;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return taken[a] < taken[b]; });
  return order;
}

std::optional<Assignment> Assign(const Rooms& rooms, const Group& group,
                                 PlacementStrategy strategy) {
  switch (strategy) {
    case PlacementStrategy::kStrictPack:
      return AllOnOneNode(rooms, group);
    case PlacementStrategy::kStrictSpread:
      return DistinctMatcher(rooms, group).Match();
    case PlacementStrategy::kPack:
      if (auto one = AllOnOneNode(rooms, group)) return one;
      return Greedy(rooms, group, UsedFirst);
    case PlacementStrategy::kSpread:
      if (auto distinct = DistinctMatcher(rooms, group).Match()) return distinct;
      return Greedy(rooms, group, FewestFirst);
  }
  return std::nullopt;
}

// The schedulable nodes, least utilised first (ties by id), each with the room `make` gives.
template <typename MakeRoom>
Rooms CollectRooms(const ClusterResourceView& view, MakeRoom make) {
  std::vector<const NodeView*> nodes;
  for (const auto& [id, node] : view.nodes()) {
    if (node.Schedulable()) nodes.push_back(&node);
  }
  std::stable_sort(nodes.begin(), nodes.end(), [](const NodeView* a, const NodeView* b) {
    return a->Utilization() < b->Utilization();
  });
  Rooms rooms;
  rooms.reserve(nodes.size());
  for (const NodeView* node : nodes) rooms.push_back({node->id, make(*node), &node->labels});
  return rooms;
}

std::string DescribeGroup(const Group& group, PlacementStrategy strategy) {
  std::string out = absl::StrCat(group.size(), " bundle(s) ");
  for (size_t i = 0; i < group.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ", ", group.bundles[i].ToString());
    if (!group.selectors.empty() && !group.selectors[i].empty()) {
      absl::StrAppend(&out, " on labels ", group.selectors[i].ToString());
    }
  }
  absl::StrAppend(&out, " with ", PlacementStrategyName(strategy));
  return out;
}

}  // namespace

const char* PlacementStrategyName(PlacementStrategy strategy) {
  switch (strategy) {
    case PlacementStrategy::kPack:
      return "PACK";
    case PlacementStrategy::kSpread:
      return "SPREAD";
    case PlacementStrategy::kStrictPack:
      return "STRICT_PACK";
    case PlacementStrategy::kStrictSpread:
      return "STRICT_SPREAD";
  }
  return "UNKNOWN";
}

absl::StatusOr<BundlePlacement> PlaceBundles(const ClusterResourceView& view,
                                             const std::vector<ResourceSet>& bundles,
                                             PlacementStrategy strategy,
                                             const std::vector<Labels>& bundle_label_selectors) {
  if (bundles.empty()) return absl::InvalidArgumentError("a placement group needs a bundle");
  if (!bundle_label_selectors.empty() && bundle_label_selectors.size() != bundles.size()) {
    return absl::InvalidArgumentError(absl::StrCat(bundle_label_selectors.size(),
                                                   " bundle label selectors for ",
                                                   bundles.size(), " bundles"));
  }
  std::vector<LabelSelector> selectors;
  for (size_t i = 0; i < bundle_label_selectors.size(); ++i) {
    absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(bundle_label_selectors[i]);
    if (!selector.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bundle ", i, ": ", selector.status().message()));
    }
    selectors.push_back(*std::move(selector));
  }
  const Group group{bundles, selectors};
  for (size_t i = 0; i < bundles.size(); ++i) {
    if (bundles[i].IsEmpty()) {
      return absl::InvalidArgumentError(absl::StrCat("bundle ", i, " asks for no resources"));
    }
    if (auto s = ValidateDemand(bundles[i]); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("bundle ", i, ": ", s.message()));
    }
  }

  BundlePlacement out;
  Rooms free_now = CollectRooms(view, NodeRoom::Available);
  if (auto assignment = Assign(free_now, group, strategy)) {
    out.kind = BundlePlacement::Kind::kPlaced;
    for (size_t r : *assignment) out.nodes.push_back(free_now[r].id);
  } else if (Assign(CollectRooms(view, NodeRoom::Total), group, strategy).has_value()) {
    out.kind = BundlePlacement::Kind::kQueue;
    out.reason =
        absl::StrCat("not enough free resources now for ", DescribeGroup(group, strategy));
  } else {
    out.kind = BundlePlacement::Kind::kInfeasible;
    out.reason = absl::StrCat("no schedulable nodes could hold ", DescribeGroup(group, strategy),
                              " even when idle");
  }
  return out;
}

}  // namespace shoal

// The cluster status report; see status_format.h.
#include "src/cluster/status_format.h"

#include <algorithm>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "src/common/bundle_resources.h"
#include "src/common/gpu_memory_caps.h"
#include "src/common/resources.h"

namespace shoal::cluster {
namespace {

using Amounts = rpc::ResourceMap;

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr size_t kShortIdLength = 12;

bool IsBytes(const std::string& name) { return name == kMemory || name == kObjectStoreMemory; }

int64_t Get(const Amounts& amounts, const std::string& name) {
  auto it = amounts.amounts().find(name);
  return it == amounts.amounts().end() ? 0 : it->second;
}

double ToDouble(int64_t units) { return FixedPoint::FromUnits(units).ToDouble(); }

// CPU, GPU, memory, object_store_memory, then the rest by name; internal node:* and the
// bundle-formatted names of placement groups (CPU_group_..., shown as the groups) left out.
std::vector<std::string> DisplayOrder(const Amounts& amounts) {
  static const std::vector<std::string> kFirst = {kCPU, kGPU, kMemory, kObjectStoreMemory};
  auto rank = [](const std::string& name) {
    auto it = std::find(kFirst.begin(), kFirst.end(), name);
    return it - kFirst.begin();
  };
  std::vector<std::string> names;
  for (const auto& [name, units] : amounts.amounts()) {
    if (!absl::StartsWith(name, kNodePrefix) && !IsBundleResource(name)) names.push_back(name);
  }
  std::sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
    return std::make_pair(rank(a), a) < std::make_pair(rank(b), b);
  });
  return names;
}

std::string Gib(int64_t units) { return absl::StrFormat("%.2f", ToDouble(units) / kGiB); }

std::string Quantity(const std::string& name, int64_t units) {
  return IsBytes(name) ? absl::StrCat(Gib(units), " GiB") : FixedPoint::FromUnits(units).ToString();
}

// "3/8" or "1.50/15.62 GiB".
std::string UsedOfTotal(const std::string& name, int64_t used, int64_t total) {
  if (IsBytes(name)) return absl::StrCat(Gib(used), "/", Gib(total), " GiB");
  return absl::StrCat(FixedPoint::FromUnits(used).ToString(), "/", FixedPoint::FromUnits(total).ToString());
}

// Alive nodes show used/total per resource; dead ones their totals.
std::string NodeResources(const rpc::NodeInfo& node) {
  std::vector<std::string> parts;
  for (const std::string& name : DisplayOrder(node.resources_total())) {
    int64_t total = Get(node.resources_total(), name);
    if (node.state() == rpc::NodeInfo::DEAD) {
      parts.push_back(absl::StrCat(name, " ", Quantity(name, total)));
    } else {
      int64_t used = total - Get(node.resources_available(), name);
      parts.push_back(absl::StrCat(name, " ", UsedOfTotal(name, used, total)));
    }
  }
  return parts.empty() ? "(none)" : absl::StrJoin(parts, ", ");
}

std::string NodeState(const rpc::NodeInfo& node) {
  if (node.state() == rpc::NodeInfo::ALIVE) return "ALIVE";
  return node.death_reason().empty() ? "DEAD" : absl::StrCat("DEAD (", node.death_reason(), ")");
}

std::string NodeRole(const rpc::NodeInfo& node) {
  std::string role = node.is_head() ? "head" : "worker";
  if (node.scheduling_disabled()) absl::StrAppend(&role, " (no scheduling)");
  return role;
}

// Head first, then alive before dead, then oldest first.
std::vector<const rpc::NodeInfo*> SortedNodes(const rpc::GetClusterStatusReply& reply) {
  std::vector<const rpc::NodeInfo*> nodes;
  for (const rpc::NodeInfo& node : reply.nodes()) nodes.push_back(&node);
  auto key = [](const rpc::NodeInfo* n) {
    return std::make_tuple(n->state() != rpc::NodeInfo::ALIVE, !n->is_head(), n->start_time_ms(), n->node_id());
  };
  std::sort(nodes.begin(), nodes.end(), [&](auto* a, auto* b) { return key(a) < key(b); });
  return nodes;
}

// Left-aligned columns two spaces apart, indented by two; the last column is not padded.
std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line = " ";
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, " ", row[i]);
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 1, ' ');
    }
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string NodesSection(const rpc::GetClusterStatusReply& reply) {
  int alive = 0;
  for (const rpc::NodeInfo& node : reply.nodes()) alive += node.state() == rpc::NodeInfo::ALIVE;
  int dead = reply.nodes_size() - alive;
  std::string out = absl::StrCat("Nodes: ", alive, " alive", dead > 0 ? absl::StrCat(", ", dead, " dead") : "", "\n");
  if (reply.nodes().empty()) return out + "  (no nodes)\n";
  std::vector<std::vector<std::string>> rows = {{"NODE", "ADDRESS", "STATE", "ROLE", "RESOURCES"}};
  for (const rpc::NodeInfo* node : SortedNodes(reply)) {
    rows.push_back({node->node_id().substr(0, kShortIdLength), absl::StrCat(node->address(), ":", node->raylet_port()),
                    NodeState(*node), NodeRole(*node), NodeResources(*node)});
  }
  return out + Table(rows);
}

std::string ResourcesSection(const rpc::GetClusterStatusReply& reply) {
  std::string out = "Resources (used/total):\n";
  std::vector<std::string> names = DisplayOrder(reply.total());
  if (names.empty()) return out + "  (no resources)\n";
  for (const std::string& name : names) {
    int64_t total = Get(reply.total(), name);
    int64_t used = total - Get(reply.available(), name);
    absl::StrAppend(&out, "  ", UsedOfTotal(name, used, total), " ", name, "\n");
  }
  return out;
}

std::string DemandsSection(const rpc::GetClusterStatusReply& reply) {
  std::string out = "Demands:\n";
  if (reply.demands().empty()) return out + "  (no resource demands)\n";
  std::vector<const rpc::ResourceDemand*> demands;
  for (const rpc::ResourceDemand& demand : reply.demands()) demands.push_back(&demand);
  std::stable_sort(demands.begin(), demands.end(), [](auto* a, auto* b) {
    return std::make_pair(!a->infeasible(), -a->count()) < std::make_pair(!b->infeasible(), -b->count());
  });
  for (const rpc::ResourceDemand* demand : demands) {
    absl::StrAppend(&out, "  ", ResourceSet::FromProto(demand->shape()).ToString(), " * ", demand->count(), " ",
                    demand->infeasible() ? "infeasible" : "pending", "\n");
  }
  return out;
}

std::string Bundles(const rpc::PlacementGroupInfo& group) {
  std::vector<std::string> parts;
  for (const rpc::Bundle& b : group.bundles()) {
    if (b.node_id().empty()) parts.push_back(ResourceSet::FromProto(b.resources()).ToString());
  }
  return absl::StrJoin(parts, ", ");
}

// Counts by state; then each group not created yet with the bundles it waits for.
std::string PlacementGroupsSection(const rpc::GetClusterStatusReply& reply) {
  int64_t any = 0;
  for (const auto& [state, n] : reply.placement_groups_by_state()) any += n;
  if (any == 0 && reply.pending_placement_groups().empty()) return "";
  std::string out = "Placement groups:\n";
  std::vector<std::string> counts;
  for (const char* state : {"CREATED", "PENDING", "RESCHEDULING", "REMOVED"}) {
    auto it = reply.placement_groups_by_state().find(state);
    counts.push_back(absl::StrCat(it == reply.placement_groups_by_state().end() ? 0 : it->second, " ", state));
  }
  absl::StrAppend(&out, "  ", absl::StrJoin(counts, ", "), "\n");
  for (const rpc::PlacementGroupInfo& group : reply.pending_placement_groups()) {
    std::string id = absl::BytesToHexString(group.placement_group_id()).substr(0, kShortIdLength);
    std::string name = group.name().empty() ? "" : absl::StrCat(" '", group.name(), "'");
    absl::StrAppend(&out, "  ", id, name, " ", rpc::PlacementGroupInfo::State_Name(group.state()), " ",
                    rpc::PlacementGroupInfo::Strategy_Name(group.strategy()), ": ", Bundles(group),
                    group.infeasible() ? " (infeasible)" : "", "\n");
  }
  return out;
}

nlohmann::json AmountsJson(const Amounts& amounts) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, units] : amounts.amounts()) out[name] = ToDouble(units);
  return out;
}

nlohmann::json UsedJson(const Amounts& total, const Amounts& available) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, units] : total.amounts()) out[name] = ToDouble(std::max<int64_t>(0, units - Get(available, name)));
  return out;
}

nlohmann::json NodeJson(const rpc::NodeInfo& node) {
  nlohmann::json labels = nlohmann::json::object();
  for (const auto& [key, value] : node.labels()) labels[key] = value;
  return {
      {"node_id", node.node_id()},
      {"address", node.address()},
      {"raylet_port", node.raylet_port()},
      {"object_manager_port", node.object_manager_port()},
      {"hostname", node.hostname()},
      {"state", node.state() == rpc::NodeInfo::ALIVE ? "ALIVE" : "DEAD"},
      {"is_head", node.is_head()},
      {"scheduling_disabled", node.scheduling_disabled()},
      {"death_reason", node.death_reason()},
      {"start_time_ms", node.start_time_ms()},
      {"death_time_ms", node.death_time_ms()},
      {"raylet_pid", node.raylet_pid()},
      {"session_dir", node.session_dir()},
      {"resources_total", AmountsJson(node.resources_total())},
      {"resources_available", AmountsJson(node.resources_available())},
      {"labels", labels},
  };
}

}  // namespace

std::string FormatClusterStatus(const rpc::GetClusterStatusReply& reply, const std::string& gcs_address) {
  std::string storage = reply.storage().empty() ? "" : absl::StrCat(" (GCS storage: ", reply.storage(), ")");
  std::string groups = PlacementGroupsSection(reply);
  return absl::StrCat("Shoal cluster at ", gcs_address, storage, "\n\n", NodesSection(reply), "\n",
                      ResourcesSection(reply), "\n", DemandsSection(reply), groups.empty() ? "" : "\n", groups);
}

nlohmann::json NodeStatsToJson(const rpc::GetNodeStatsReply& stats) {
  nlohmann::json gpus = nlohmann::json::array();
  for (int64_t free : stats.gpu_free()) gpus.push_back(1.0 - ToDouble(free));
  return {{"gpu_used_per_device", gpus},
          {"object_store",
           {{"capacity", stats.store_capacity_bytes()},
            {"used", stats.store_used_bytes()},
            {"objects", stats.store_num_objects()},
            {"spilled", stats.store_spilled_bytes()},
            {"spilled_objects", stats.store_num_spilled()}}},
          {"workers",
           {{"total", stats.num_workers()},
            {"leased", stats.num_leased_workers()},
            {"idle", stats.num_idle_workers()},
            {"queued_leases", stats.num_queued_leases()}}}};
}

std::string FormatNodeDetails(const rpc::GetClusterStatusReply& reply,
                              const std::map<std::string, rpc::GetNodeStatsReply>& stats) {
  std::string out = "Node details:\n";
  if (reply.nodes().empty()) return out + "  (no nodes)\n";
  for (const rpc::NodeInfo* node : SortedNodes(reply)) {
    absl::StrAppend(&out, "  Node ", node->node_id(), " (", node->address(), ":", node->raylet_port(), ", ",
                    NodeRole(*node), ", ", NodeState(*node), ")\n");
    for (const std::string& name : DisplayOrder(node->resources_total())) {
      const int64_t total = Get(node->resources_total(), name);
      absl::StrAppend(&out, "    ", UsedOfTotal(name, total - Get(node->resources_available(), name), total), " ",
                      name, "\n");
    }
    if (node->state() != rpc::NodeInfo::ALIVE) continue;
    auto it = stats.find(node->node_id());
    if (it == stats.end()) {
      absl::StrAppend(&out, "    (no answer from its raylet)\n");
      continue;
    }
    const rpc::GetNodeStatsReply& s = it->second;
    for (int i = 0; i < s.gpu_free_size(); ++i) {
      absl::StrAppend(&out, "    GPU", i, ": ", absl::StrFormat("%.2f", 1.0 - ToDouble(s.gpu_free(i))), "/1 in use\n");
    }
    if (auto caps = node->labels().find(kGpuMemoryCapsLabel); caps != node->labels().end()) {
      const std::string& mode = caps->second;
      absl::StrAppend(&out, "    GPU memory caps: ", mode,
                      mode == "mps"         ? " (CUDA MPS limits each fractional worker to its share of device memory)"
                      : mode == "framework" ? " (torch / JAX memory fractions; no MPS on this node)"
                                            : " (none: workers sharing a GPU can take each other's memory)",
                      "\n");
    }
    absl::StrAppend(&out, "    object store: ", absl::StrFormat("%.2f", s.store_used_bytes() / kGiB), "/",
                    absl::StrFormat("%.2f", s.store_capacity_bytes() / kGiB), " GiB, ", s.store_num_objects(),
                    " objects, ", absl::StrFormat("%.2f", s.store_spilled_bytes() / kGiB), " GiB spilled (",
                    s.store_num_spilled(), " objects)\n");
    absl::StrAppend(&out, "    workers: ", s.num_workers(), " (", s.num_leased_workers(), " leased, ",
                    s.num_idle_workers(), " idle), ", s.num_queued_leases(), " lease requests queued\n");
  }
  return out;
}

nlohmann::json PlacementGroupToJson(const rpc::PlacementGroupInfo& group) {
  nlohmann::json bundles = nlohmann::json::array();
  for (const rpc::Bundle& b : group.bundles()) {
    nlohmann::json labels = nlohmann::json::object();
    for (const auto& [key, value] : b.label_selector()) labels[key] = value;
    bundles.push_back({{"bundle_index", b.bundle_index()},
                       {"resources", AmountsJson(b.resources())},
                       {"label_selector", labels},
                       {"node_id", b.node_id()}});
  }
  return {{"placement_group_id", absl::BytesToHexString(group.placement_group_id())},
          {"name", group.name()},
          {"namespace", group.ray_namespace()},
          {"state", rpc::PlacementGroupInfo::State_Name(group.state())},
          {"strategy", rpc::PlacementGroupInfo::Strategy_Name(group.strategy())},
          {"bundles", bundles},
          {"job_id", group.job_id()},
          {"creator_address", group.creator_address()},
          {"detached", group.detached()},
          {"create_time_ms", group.create_time_ms()},
          {"created_time_ms", group.created_time_ms()},
          {"remove_time_ms", group.remove_time_ms()},
          {"pending_reason", group.pending_reason()},
          {"infeasible", group.infeasible()}};
}

nlohmann::json ClusterStatusToJson(const rpc::GetClusterStatusReply& reply, const std::string& gcs_address) {
  nlohmann::json nodes = nlohmann::json::array();
  for (const rpc::NodeInfo* node : SortedNodes(reply)) nodes.push_back(NodeJson(*node));
  nlohmann::json demands = nlohmann::json::array();
  for (const rpc::ResourceDemand& demand : reply.demands()) {
    demands.push_back(
        {{"shape", AmountsJson(demand.shape())}, {"count", demand.count()}, {"infeasible", demand.infeasible()}});
  }
  nlohmann::json by_state = nlohmann::json::object();
  for (const auto& [state, n] : reply.placement_groups_by_state()) by_state[state] = n;
  nlohmann::json pending_groups = nlohmann::json::array();
  for (const rpc::PlacementGroupInfo& group : reply.pending_placement_groups()) {
    pending_groups.push_back(PlacementGroupToJson(group));
  }
  return {
      {"gcs_address", gcs_address},
      {"storage", reply.storage()},
      {"placement_groups", {{"by_state", by_state}, {"pending", pending_groups}}},
      {"gcs_start_time_ms", reply.gcs_start_time_ms()},
      {"nodes", nodes},
      {"total", AmountsJson(reply.total())},
      {"available", AmountsJson(reply.available())},
      {"used", UsedJson(reply.total(), reply.available())},
      {"demands", demands},
  };
}

}  // namespace shoal::cluster

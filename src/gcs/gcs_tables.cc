#include "src/gcs/gcs_tables.h"

#include <algorithm>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace shoal {
namespace {
constexpr char kNodeTable[] = "nodes";
constexpr char kJobTable[] = "jobs";

int64_t ToMillis(absl::Time t) { return absl::ToUnixMillis(t); }
}  // namespace

// --- NodeChangeFeed ---

bool NodeChangeFeed::Subscribe(std::shared_ptr<Listener> listener) {
  absl::MutexLock lock(&mu_);
  if (closed_) return false;
  listeners_.push_back(std::move(listener));
  return true;
}

void NodeChangeFeed::Unsubscribe(const Listener* listener) {
  absl::MutexLock lock(&mu_);
  std::erase_if(listeners_, [listener](const auto& l) { return l.get() == listener; });
}

std::vector<std::shared_ptr<NodeChangeFeed::Listener>> NodeChangeFeed::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return listeners_;
}

void NodeChangeFeed::Publish(const rpc::NodeInfo& node) {
  absl::MutexLock deliver(&deliver_mu_);
  for (const auto& listener : Snapshot()) listener->OnNodeChange(node);
}

void NodeChangeFeed::Close() {
  absl::MutexLock deliver(&deliver_mu_);
  std::vector<std::shared_ptr<Listener>> closing;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    closing.swap(listeners_);
  }
  for (const auto& listener : closing) listener->OnFeedClosed();
}

size_t NodeChangeFeed::NumSubscribers() const {
  absl::MutexLock lock(&mu_);
  return listeners_.size();
}

// --- NodeTable ---

NodeTable::NodeTable(StoreClient& store, const Clock& clock, NodeChangeFeed& feed)
    : store_(store), clock_(clock), feed_(feed) {}

absl::Status NodeTable::Persist(const rpc::NodeInfo& node) {
  rpc::NodeInfo stored = node;
  stored.clear_resources_available();  // live view, refreshed by reports
  stored.clear_demands();
  auto put = store_.Put(kNodeTable, node.node_id(), stored.SerializeAsString(), /*overwrite=*/true);
  return put.status();
}

absl::StatusOr<std::vector<rpc::NodeInfo>> NodeTable::Load() {
  auto rows = store_.GetAll(kNodeTable);
  if (!rows.ok()) return rows.status();
  std::vector<rpc::NodeInfo> alive;
  absl::MutexLock lock(&mu_);
  for (const auto& [key, value] : *rows) {
    rpc::NodeInfo node;
    if (!node.ParseFromString(value)) {
      spdlog::warn("node table: skipping unreadable entry {}", key);
      continue;
    }
    *node.mutable_resources_available() = node.resources_total();
    if (node.state() == rpc::NodeInfo::ALIVE) alive.push_back(node);
    nodes_[key] = std::move(node);
  }
  return alive;
}

absl::Status NodeTable::Register(rpc::NodeInfo node) {
  auto id = NodeId::FromHex(node.node_id());
  if (!id.ok()) return id.status();
  node.set_node_id(id->Hex());  // one spelling, so lookups by id always match
  if (node.address().empty() || node.raylet_port() <= 0 || node.raylet_port() > 65535) {
    return absl::InvalidArgumentError("a node needs an address and a raylet port in 1..65535");
  }
  {
    absl::MutexLock lock(&mu_);
    auto it = nodes_.find(node.node_id());
    if (it != nodes_.end() && it->second.state() == rpc::NodeInfo::DEAD) {
      return absl::FailedPreconditionError(absl::StrCat(
          "node ", node.node_id(), " was declared dead (", it->second.death_reason(),
          "); start the raylet again to join with a new id"));
    }
    if (it != nodes_.end()) {
      return absl::AlreadyExistsError(absl::StrCat("node ", node.node_id(), " is already registered and alive (at ",
                                                   it->second.address(), ":", it->second.raylet_port(),
                                                   "); a node registers once"));
    }
    node.set_state(rpc::NodeInfo::ALIVE);
    node.clear_death_time_ms();
    node.clear_death_reason();
    if (node.start_time_ms() == 0) node.set_start_time_ms(ToMillis(clock_.Now()));
    if (!node.has_resources_available()) *node.mutable_resources_available() = node.resources_total();
    if (auto s = Persist(node); !s.ok()) return s;
    nodes_[node.node_id()] = node;
  }
  spdlog::info("node {} registered at {}:{}", node.node_id(), node.address(), node.raylet_port());
  feed_.Publish(node);
  return absl::OkStatus();
}

absl::Status NodeTable::MarkDead(const NodeId& id, const std::string& reason) {
  rpc::NodeInfo node;
  {
    absl::MutexLock lock(&mu_);
    auto it = nodes_.find(id.Hex());
    if (it == nodes_.end()) return absl::NotFoundError(absl::StrCat("unknown node ", id.Hex()));
    if (it->second.state() == rpc::NodeInfo::DEAD) return absl::OkStatus();
    node = it->second;
    node.set_state(rpc::NodeInfo::DEAD);
    node.set_death_time_ms(ToMillis(clock_.Now()));
    node.set_death_reason(reason);
    node.clear_resources_available();
    node.clear_demands();
    // Written first: a death that is not stored would come back alive after a GCS restart.
    if (auto s = Persist(node); !s.ok()) return s;
    it->second = node;
  }
  spdlog::warn("node {} is dead: {}", id.Hex(), reason);
  feed_.Publish(node);
  return absl::OkStatus();
}

bool NodeTable::ReportResources(const NodeId& id, const rpc::ResourceMap& available,
                                const std::vector<rpc::ResourceDemand>& demands, const rpc::ResourceMap& total,
                                const std::vector<int64_t>& gpu_free) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(id.Hex());
  if (it == nodes_.end() || it->second.state() != rpc::NodeInfo::ALIVE) return false;
  if (!ResourceSet::FromProto(total).IsEmpty()) *it->second.mutable_resources_total() = total;
  *it->second.mutable_resources_available() = available;
  it->second.clear_demands();
  for (const auto& d : demands) *it->second.add_demands() = d;
  it->second.clear_gpu_free();
  for (int64_t share : gpu_free) it->second.add_gpu_free(share);
  return true;
}

void NodeTable::SetGroupResources(const NodeId& id, const PlacementGroupId& pg, const ResourceSet& amounts) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(id.Hex());
  if (it == nodes_.end() || it->second.state() != rpc::NodeInfo::ALIVE) return;
  auto& total = *it->second.mutable_resources_total()->mutable_amounts();
  auto& available = *it->second.mutable_resources_available()->mutable_amounts();
  // Every name of the group ends with its hex id: only those are parsed.
  const std::string hex = pg.Hex();
  auto of_group = [&pg, &hex](const std::string& name) {
    if (!absl::EndsWith(name, hex)) return false;
    auto parsed = ParseBundleResource(name);
    return parsed.has_value() && parsed->pg == pg;
  };
  std::map<std::string, int64_t> reported;  // the group's names in the last report
  for (auto* map : {&total, &available}) {
    for (auto entry = map->begin(); entry != map->end();) {
      if (!of_group(entry->first)) {
        ++entry;
        continue;
      }
      if (map == &available) reported[entry->first] = entry->second;
      entry = map->erase(entry);
    }
  }
  for (const auto& [name, amount] : amounts.entries()) {
    total[name] = amount.units();
    auto r = reported.find(name);
    available[name] = r == reported.end() ? amount.units() : std::min(r->second, amount.units());
  }
}

namespace {

// Head first, then the oldest.
void SortNodes(std::vector<rpc::NodeInfo>& nodes) {
  std::sort(nodes.begin(), nodes.end(), [](const rpc::NodeInfo& a, const rpc::NodeInfo& b) {
    if (a.is_head() != b.is_head()) return a.is_head();
    return a.start_time_ms() != b.start_time_ms() ? a.start_time_ms() < b.start_time_ms()
                                                  : a.node_id() < b.node_id();
  });
}

void CopyWithoutBundles(const rpc::ResourceMap& from, rpc::ResourceMap* to) {
  for (const auto& [name, units] : from.amounts()) {
    if (!IsBundleResource(name)) (*to->mutable_amounts())[name] = units;
  }
}

}  // namespace

std::vector<rpc::NodeInfo> NodeTable::GetAll(bool alive_only) const {
  absl::MutexLock lock(&mu_);
  std::vector<rpc::NodeInfo> out;
  out.reserve(nodes_.size());
  for (const auto& [key, node] : nodes_) {
    if (!alive_only || node.state() == rpc::NodeInfo::ALIVE) out.push_back(node);
  }
  SortNodes(out);
  return out;
}

std::vector<rpc::NodeInfo> NodeTable::GetAllWithoutBundles(bool alive_only) {
  absl::MutexLock lock(&mu_);
  std::vector<rpc::NodeInfo> out;
  out.reserve(nodes_.size());
  for (auto& [key, node] : nodes_) {
    if (alive_only && node.state() != rpc::NodeInfo::ALIVE) continue;
    // Copy the entry with its resource maps moved aside (the lock hides the moment), then the
    // maps' own entries.
    rpc::ResourceMap total, available;
    total.Swap(node.mutable_resources_total());
    available.Swap(node.mutable_resources_available());
    rpc::NodeInfo& copy = out.emplace_back(node);
    total.Swap(node.mutable_resources_total());
    available.Swap(node.mutable_resources_available());
    CopyWithoutBundles(node.resources_total(), copy.mutable_resources_total());
    CopyWithoutBundles(node.resources_available(), copy.mutable_resources_available());
  }
  SortNodes(out);
  return out;
}

std::optional<rpc::NodeInfo> NodeTable::Get(const NodeId& id) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(id.Hex());
  if (it == nodes_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> NodeTable::AliveRayletAddress(const NodeId& id) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(id.Hex());
  if (it == nodes_.end() || it->second.state() != rpc::NodeInfo::ALIVE) return std::nullopt;
  return absl::StrCat(it->second.address(), ":", it->second.raylet_port());
}

ClusterSummary NodeTable::Summarize() const {
  ClusterSummary out;
  std::map<std::string, rpc::ResourceDemand> merged;  // by the shape's printed form
  absl::MutexLock lock(&mu_);
  for (const auto& [key, node] : nodes_) {
    if (node.state() != rpc::NodeInfo::ALIVE) continue;
    if (!node.scheduling_disabled()) {
      out.total.Add(ResourceSet::FromProto(node.resources_total()));
      out.available.Add(ResourceSet::FromProto(node.resources_available()));
    }
    for (const auto& d : node.demands()) {
      std::string shape = absl::StrCat(ResourceSet::FromProto(d.shape()).ToString(), d.infeasible());
      auto [it, added] = merged.try_emplace(shape, d);
      if (!added) it->second.set_count(it->second.count() + d.count());
    }
  }
  for (auto& [shape, d] : merged) out.demands.push_back(std::move(d));
  return out;
}

// --- JobTable ---

absl::StatusOr<std::string> JobTable::Add(rpc::JobInfo job) {
  const bool explicit_id = !job.job_id().empty();
  if (explicit_id) {
    auto id = JobId::FromHex(job.job_id());
    if (!id.ok()) return id.status();
    job.set_job_id(id->Hex());  // one spelling per job
  }
  if (job.start_time_ms() == 0) job.set_start_time_ms(ToMillis(clock_.Now()));
  job.set_is_dead(false);
  absl::MutexLock lock(&mu_);
  // A counter value may already be taken by an explicit id: take the next one, a bounded
  // number of times.
  for (int attempt = 0; attempt < 1000; ++attempt) {
    if (!explicit_id) {
      auto next = store_.Increment("job_id");
      if (!next.ok()) return next.status();
      job.set_job_id(JobId::FromInt(static_cast<uint32_t>(*next)).Hex());
    }
    auto put = store_.Put(kJobTable, job.job_id(), job.SerializeAsString(), /*overwrite=*/false);
    if (!put.ok()) return put.status();
    if (*put) return job.job_id();
    if (explicit_id) return absl::AlreadyExistsError(absl::StrCat("job ", job.job_id(), " exists"));
  }
  return absl::ResourceExhaustedError("no free job id after 1000 tries");
}

absl::Status JobTable::MarkFinished(const std::string& job_id_text) {
  auto id = JobId::FromHex(job_id_text);
  if (!id.ok()) return id.status();
  const std::string job_id = id->Hex();
  absl::MutexLock lock(&mu_);
  auto value = store_.Get(kJobTable, job_id);
  if (!value.ok()) return value.status();
  if (!value->has_value()) return absl::NotFoundError(absl::StrCat("unknown job ", job_id));
  rpc::JobInfo job;
  if (!job.ParseFromString(**value)) return absl::DataLossError(absl::StrCat("job ", job_id, " is unreadable"));
  if (job.is_dead()) return absl::OkStatus();
  job.set_is_dead(true);
  job.set_end_time_ms(ToMillis(clock_.Now()));
  return store_.Put(kJobTable, job_id, job.SerializeAsString(), /*overwrite=*/true).status();
}

absl::StatusOr<std::vector<rpc::JobInfo>> JobTable::GetAll() {
  auto rows = store_.GetAll(kJobTable);
  if (!rows.ok()) return rows.status();
  std::vector<rpc::JobInfo> out;
  for (const auto& [key, value] : *rows) {
    rpc::JobInfo job;
    if (job.ParseFromString(value)) out.push_back(std::move(job));
  }
  return out;
}

// --- KvStore ---

absl::StatusOr<bool> KvStore::Put(const std::string& ns, const std::string& key,
                                  const std::string& value, bool overwrite) {
  if (key.empty()) return absl::InvalidArgumentError("KV key must not be empty");
  if (value.size() > max_value_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "KV value of ", value.size(), " bytes for key '", absl::CHexEscape(key.substr(0, 100)), "' in namespace '",
        absl::CHexEscape(ns.substr(0, 100)), "' is over the limit of ", max_value_bytes_,
        " bytes (shoal-gcs --kv-max-value-bytes)"));
  }
  return store_.Put(Table(ns), key, value, overwrite);
}

absl::StatusOr<std::optional<std::string>> KvStore::Get(const std::string& ns, const std::string& key) {
  return store_.Get(Table(ns), key);
}

absl::StatusOr<int64_t> KvStore::Delete(const std::string& ns, const std::string& key, bool by_prefix) {
  if (!by_prefix) {
    auto deleted = store_.Delete(Table(ns), key);
    if (!deleted.ok()) return deleted.status();
    return *deleted ? 1 : 0;
  }
  auto keys = store_.Keys(Table(ns), key);
  if (!keys.ok()) return keys.status();
  int64_t count = 0;
  for (const auto& k : *keys) {
    auto deleted = store_.Delete(Table(ns), k);
    if (!deleted.ok()) return deleted.status();
    count += *deleted ? 1 : 0;
  }
  return count;
}

absl::StatusOr<std::vector<std::string>> KvStore::Keys(const std::string& ns, const std::string& prefix) {
  return store_.Keys(Table(ns), prefix);
}

}  // namespace shoal

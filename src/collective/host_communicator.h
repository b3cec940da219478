// The host backend: ranks joined by a full mesh of TCP connections, collectives run as rings
// (allreduce, allgather, reducescatter) or stars (broadcast, reduce, barrier) over them. It
// works on host memory only, and also serves the NCCL backend as its side channel (unique-id
// exchange, argument checks, noticing a dead peer).
//
// Joining: each rank listens on `bind_host`, publishes "host:port|nonce" under its rank in a
// key-value store (the GCS KV in a cluster), connects to every lower rank and accepts every
// higher one. A connection names group, world size, rank and the nonce it read, so a stale key
// (a rank that died) is retried until the joining deadline instead of reaching a stranger. A
// rank already held by a live process refuses a second claimant with AlreadyExists.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "src/collective/communicator.h"

namespace shoal::collective {

// Where ranks find each other. Keys are strings; values are short strings.
// Threading: called from the joining thread and the rank's acceptor thread.
class KeyValue {
 public:
  virtual ~KeyValue() = default;
  // Stores `value` under `key`; with overwrite=false an existing key is kept and *added is false.
  virtual Status Put(const std::string& key, const std::string& value, bool overwrite, bool* added) = 0;
  // NotFound when absent.
  virtual Status Get(const std::string& key, std::string* value) = 0;
  virtual Status Delete(const std::string& key) = 0;
};

struct GroupOptions {
  std::string group_name;
  int world_size = 0;
  int rank = -1;
  std::string bind_host = "127.0.0.1";  // the address peers reach this rank at
  std::chrono::milliseconds join_timeout{std::chrono::seconds(60)};
  // How long one operation may wait on a peer before the group is aborted.
  std::chrono::milliseconds op_timeout{std::chrono::seconds(600)};
};

// The key a rank publishes its address under.
std::string RankKey(const std::string& group_name, int rank);

// Joins the group as options.rank; returns once every rank is connected. InvalidArgument for bad
// options or peers that disagree on the world size; AlreadyExists when the rank is held by a
// live process; DeadlineExceeded when peers did not all arrive within join_timeout.
Status JoinHostGroup(const GroupOptions& options, KeyValue& kv, std::unique_ptr<Communicator>* out);

}  // namespace shoal::collective

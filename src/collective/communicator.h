// A group of processes that run collective operations together, one rank each: the interface
// that the host (TCP) and NCCL backends implement and that the Python collective API, the C++
// API (include/shoal/gpu.h) and GPU-tensor transfers use.
//
// Every rank must call the same operations in the same order with matching arguments; a rank
// whose call does not match (operation, element type, count or root) gets InvalidArgument, and
// so do its peers, instead of a hang. A peer that dies or closes the group fails the operations
// of the others with Aborted; an operation that does not finish within the group's timeout fails
// with DeadlineExceeded. After any failure the group is aborted: later calls answer
// FailedPrecondition, and the group must be destroyed and made again.
//
// Threading: operations are serialized per communicator (callers may use several threads, one
// operation runs at a time); Abort may be called from any thread at any time.
#pragma once

#include <chrono>
#include <string>

#include "src/collective/status.h"
#include "src/collective/types.h"

namespace shoal::collective {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const std::string& group_name() const = 0;
  virtual const char* backend() const = 0;  // "gloo" (host) or "nccl"

  // In place: afterwards every rank's `buffer` holds `op` over all ranks' buffers.
  virtual Status AllReduce(const Buffer& buffer, ReduceOp op) = 0;
  // In place: afterwards every rank's `buffer` holds the root's.
  virtual Status Broadcast(const Buffer& buffer, int root) = 0;
  // `out` holds size() * in.count elements; rank r's `in` lands at offset r * in.count.
  virtual Status AllGather(const Buffer& in, const Buffer& out) = 0;
  // `in` holds size() * out.count elements; rank r's `out` is `op` over every rank's slice r.
  virtual Status ReduceScatter(const Buffer& in, const Buffer& out, ReduceOp op) = 0;
  // In place on the root only: the root's `buffer` holds `op` over all ranks' buffers; the
  // others' buffers are left as they were.
  virtual Status Reduce(const Buffer& buffer, int root, ReduceOp op) = 0;
  // Point to point: a Send to `peer` pairs with that peer's Recv from this rank, in order.
  virtual Status Send(const Buffer& buffer, int peer) = 0;
  virtual Status Recv(const Buffer& buffer, int peer) = 0;
  // Returns once every rank has entered it.
  virtual Status Barrier() = 0;

  // True while the group is usable and every peer's connection is open; else false and `why`.
  // Non-blocking (the NCCL backend's watchdog asks its host side channel this while it waits).
  virtual bool Healthy(std::string* why) = 0;

  // Fails the operation in flight and every later one with `why`; peers see the group close.
  virtual void Abort(const std::string& why) = 0;
};

}  // namespace shoal::collective

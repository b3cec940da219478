// Writes to a StoreClient in the order they were queued, outside the queuing code's lock.
//
// A component that keeps its state under a mutex queues its store writes while it holds that
// lock, so that their order is the order of its state changes, and calls Flush after releasing
// it, so that a slow or unreachable store (Redis) never holds up callers that only read or change
// the state in memory. Flush runs every write queued before it was called, in queue order; one
// thread writes at a time, so two writes to one key never land out of order.
//
// Threading: any thread. Put and Delete never wait for the store; Flush does (and may run writes
// other threads queued). `done` callbacks run inside Flush, on the flushing thread: they must not
// call back into the writer.
// Errors: a failed write is logged with its table and key; a caller that must know passes `done`.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "src/gcs/store_client.h"

namespace shoal {

class OrderedStoreWriter {
 public:
  using Done = std::function<void(const absl::Status&)>;

  explicit OrderedStoreWriter(StoreClient& store) : store_(store) {}
  OrderedStoreWriter(const OrderedStoreWriter&) = delete;
  OrderedStoreWriter& operator=(const OrderedStoreWriter&) = delete;

  // Queues an overwriting Put of `value` at (`table`, `key`).
  void Put(std::string table, std::string key, std::string value, Done done = nullptr);
  // Queues a Delete of (`table`, `key`); deleting an absent key is no failure.
  void Delete(std::string table, std::string key, Done done = nullptr);
  // Returns once every write queued before this call has been made (by this or another thread).
  void Flush();

  // Writes queued and not yet taken by a flusher.
  size_t pending() const;

 private:
  struct Write {
    bool is_delete = false;
    std::string table;
    std::string key;
    std::string value;
    Done done;
  };

  StoreClient& store_;
  absl::Mutex write_mu_;  // held by the one thread that writes; taken before mu_
  mutable absl::Mutex mu_;
  std::deque<Write> queue_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal

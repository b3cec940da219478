#include "src/gcs/store_writer.h"

#include <utility>

#include "spdlog/spdlog.h"

namespace shoal {

void OrderedStoreWriter::Put(std::string table, std::string key, std::string value, Done done) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(Write{.is_delete = false,
                         .table = std::move(table),
                         .key = std::move(key),
                         .value = std::move(value),
                         .done = std::move(done)});
}

void OrderedStoreWriter::Delete(std::string table, std::string key, Done done) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(
      Write{.is_delete = true, .table = std::move(table), .key = std::move(key), .value = "", .done = std::move(done)});
}

void OrderedStoreWriter::Flush() {
  // A thread that finds another flushing waits here; by the time it gets in, that one has made
  // every write queued before it (including this caller's), or left them in the queue for it.
  absl::MutexLock writing(&write_mu_);
  while (true) {
    Write w;
    {
      absl::MutexLock lock(&mu_);
      if (queue_.empty()) return;
      w = std::move(queue_.front());
      queue_.pop_front();
    }
    absl::Status status = w.is_delete ? store_.Delete(w.table, w.key).status()
                                      : store_.Put(w.table, w.key, w.value, /*overwrite=*/true).status();
    if (!status.ok()) {
      spdlog::error("cannot {} {}/{} in the {} store: {}", w.is_delete ? "delete" : "write", w.table, w.key,
                    store_.Name(), status.ToString());
    }
    if (w.done) w.done(status);
  }
}

size_t OrderedStoreWriter::pending() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

}  // namespace shoal

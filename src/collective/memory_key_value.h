// A KeyValue in this process's memory: for ranks that are threads of one process (tests, the
// GPU suite) and for one-rank groups.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "src/collective/host_communicator.h"

namespace shoal::collective {

class MemoryKeyValue final : public KeyValue {
 public:
  Status Put(const std::string& key, const std::string& value, bool overwrite, bool* added) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, inserted] = values_.emplace(key, value);
    if (!inserted && overwrite) it->second = value;
    *added = inserted;
    return Status::Ok();
  }
  Status Get(const std::string& key, std::string* value) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = values_.find(key);
    if (it == values_.end()) return NotFound(key);
    *value = it->second;
    return Status::Ok();
  }
  Status Delete(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    values_.erase(key);
    return Status::Ok();
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> values_;
};

}  // namespace shoal::collective

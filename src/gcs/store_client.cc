#include "src/gcs/store_client.h"

#include <hiredis/hiredis.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace shoal {

// --- InMemoryStoreClient ---

absl::StatusOr<bool> InMemoryStoreClient::Put(const std::string& table, const std::string& key,
                                              const std::string& value, bool overwrite) {
  absl::MutexLock lock(&mu_);
  auto& t = tables_[table];
  auto [it, added] = t.try_emplace(key, value);
  if (!added && overwrite) it->second = value;
  return added;
}

absl::StatusOr<std::optional<std::string>> InMemoryStoreClient::Get(const std::string& table,
                                                                    const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto t = tables_.find(table);
  if (t == tables_.end()) return std::nullopt;
  auto it = t->second.find(key);
  if (it == t->second.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> InMemoryStoreClient::GetAll(
    const std::string& table) {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::string, std::string>> out;
  if (auto t = tables_.find(table); t != tables_.end()) out.assign(t->second.begin(), t->second.end());
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<bool> InMemoryStoreClient::Delete(const std::string& table, const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto t = tables_.find(table);
  return t != tables_.end() && t->second.erase(key) > 0;
}

absl::StatusOr<std::vector<std::string>> InMemoryStoreClient::Keys(const std::string& table,
                                                                   const std::string& prefix) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  if (auto t = tables_.find(table); t != tables_.end()) {
    for (const auto& [key, value] : t->second) {
      if (absl::StartsWith(key, prefix)) out.push_back(key);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<int64_t> InMemoryStoreClient::Increment(const std::string& name) {
  absl::MutexLock lock(&mu_);
  return ++counters_[name];
}

// --- RedisStoreClient ---

// An owned redisReply.
struct RedisStoreClient::Reply {
  std::unique_ptr<redisReply, void (*)(void*)> r{nullptr, freeReplyObject};
};

absl::StatusOr<std::unique_ptr<RedisStoreClient>> RedisStoreClient::Connect(const RedisOptions& options) {
  std::unique_ptr<RedisStoreClient> client(new RedisStoreClient(options));
  {
    absl::MutexLock lock(&client->mu_);
    if (auto s = client->ConnectLocked(); !s.ok()) return s;
  }
  auto pong = client->Command({"PING"});
  if (!pong.ok()) return pong.status();
  return client;
}

RedisStoreClient::~RedisStoreClient() {
  absl::MutexLock lock(&mu_);
  if (ctx_ != nullptr) redisFree(ctx_);
}

absl::Status RedisStoreClient::ConnectLocked() {
  if (ctx_ != nullptr) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
  struct timeval timeout = {options_.connect_timeout_ms / 1000, (options_.connect_timeout_ms % 1000) * 1000};
  redisContext* ctx = redisConnectWithTimeout(options_.host.c_str(), options_.port, timeout);
  const std::string where = absl::StrCat("Redis at ", options_.host, ":", options_.port);
  if (ctx == nullptr) return absl::UnavailableError(absl::StrCat("cannot reach ", where));
  if (ctx->err) {
    std::string msg = absl::StrCat("cannot reach ", where, ": ", ctx->errstr);
    redisFree(ctx);
    return absl::UnavailableError(msg);
  }
  // Calls that hang longer than this are failures, not waits.
  struct timeval io_timeout = {10, 0};
  redisSetTimeout(ctx, io_timeout);
  if (!options_.password.empty()) {
    auto* r = static_cast<redisReply*>(redisCommand(ctx, "AUTH %b", options_.password.data(), options_.password.size()));
    bool ok = r != nullptr && r->type != REDIS_REPLY_ERROR;
    std::string msg = r == nullptr ? ctx->errstr : (r->type == REDIS_REPLY_ERROR ? r->str : "");
    if (r != nullptr) freeReplyObject(r);
    if (!ok) {
      redisFree(ctx);
      return absl::PermissionDeniedError(absl::StrCat("AUTH to ", where, " failed: ", msg));
    }
  }
  ctx_ = ctx;
  return absl::OkStatus();
}

absl::StatusOr<RedisStoreClient::Reply> RedisStoreClient::Command(const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  absl::MutexLock lock(&mu_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (ctx_ == nullptr) {
      if (auto s = ConnectLocked(); !s.ok()) return s;
    }
    Reply reply;
    reply.r.reset(static_cast<redisReply*>(
        redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data())));
    if (reply.r == nullptr) {
      // The connection broke (server restarted, timeout): reopen and try once more.
      std::string err = ctx_->errstr;
      redisFree(ctx_);
      ctx_ = nullptr;
      if (attempt == 1) return absl::UnavailableError(absl::StrCat("Redis ", argv[0], " failed: ", err));
      continue;
    }
    if (reply.r->type == REDIS_REPLY_ERROR) {
      std::string err(reply.r->str, reply.r->len);
      std::string msg = absl::StrCat("Redis ", argv[0], " at ", options_.host, ":", options_.port, ": ", err);
      for (const char* auth_error : {"NOAUTH", "WRONGPASS", "NOPERM"}) {
        if (absl::StartsWith(err, auth_error)) return absl::PermissionDeniedError(msg);
      }
      return absl::InternalError(msg);
    }
    return reply;
  }
  return absl::UnavailableError("Redis unreachable");
}

absl::StatusOr<bool> RedisStoreClient::Put(const std::string& table, const std::string& key,
                                           const std::string& value, bool overwrite) {
  auto reply = Command({overwrite ? "HSET" : "HSETNX", HashName(table), key, value});
  if (!reply.ok()) return reply.status();
  return reply->r->integer == 1;
}

absl::StatusOr<std::optional<std::string>> RedisStoreClient::Get(const std::string& table,
                                                                 const std::string& key) {
  auto reply = Command({"HGET", HashName(table), key});
  if (!reply.ok()) return reply.status();
  if (reply->r->type == REDIS_REPLY_NIL) return std::nullopt;
  return std::string(reply->r->str, reply->r->len);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> RedisStoreClient::GetAll(
    const std::string& table) {
  auto reply = Command({"HGETALL", HashName(table)});
  if (!reply.ok()) return reply.status();
  std::vector<std::pair<std::string, std::string>> out;
  const redisReply* r = reply->r.get();
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    out.emplace_back(std::string(r->element[i]->str, r->element[i]->len),
                     std::string(r->element[i + 1]->str, r->element[i + 1]->len));
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<bool> RedisStoreClient::Delete(const std::string& table, const std::string& key) {
  auto reply = Command({"HDEL", HashName(table), key});
  if (!reply.ok()) return reply.status();
  return reply->r->integer > 0;
}

absl::StatusOr<std::vector<std::string>> RedisStoreClient::Keys(const std::string& table,
                                                                const std::string& prefix) {
  // HKEYS and filter here: a MATCH pattern would need every glob character in the prefix escaped.
  auto reply = Command({"HKEYS", HashName(table)});
  if (!reply.ok()) return reply.status();
  std::vector<std::string> out;
  const redisReply* r = reply->r.get();
  for (size_t i = 0; i < r->elements; ++i) {
    std::string key(r->element[i]->str, r->element[i]->len);
    if (absl::StartsWith(key, prefix)) out.push_back(std::move(key));
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<int64_t> RedisStoreClient::Increment(const std::string& name) {
  auto reply = Command({"INCR", options_.key_prefix + ":counter:" + name});
  if (!reply.ok()) return reply.status();
  return reply->r->integer;
}

}  // namespace shoal

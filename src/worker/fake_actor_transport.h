// An ActorTransport that records pushes and polls for the test to answer. For tests.
#pragma once

#include <deque>
#include <string>

#include "src/worker/actor_submitter.h"

namespace shoal {

struct FakeActorTransport : ActorTransport {
  struct Push {
    std::string address;
    rpc::PushTaskRequest request;
    PushCallback done;
  };
  struct Poll {
    ActorId actor;
    int64_t after_version;
    InfoCallback done;
  };
  void PushTask(const std::string& address, SharedPushRequest request, PushCallback done) override {
    pushes.push_back({address, *request, std::move(done)});
  }
  void GetActorInfo(const ActorId& actor, int64_t after_version, absl::Duration, InfoCallback done) override {
    polls.push_back({actor, after_version, std::move(done)});
  }
  std::deque<Push> pushes;
  std::deque<Poll> polls;
};

}  // namespace shoal

#include "src/common/ids.h"

#include <random>

namespace shoal {

void FillRandom(uint8_t* out, size_t n) {
  thread_local std::mt19937_64 gen([] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }());
  for (size_t i = 0; i < n; i += 8) {
    uint64_t word = gen();
    std::memcpy(out + i, &word, std::min<size_t>(8, n - i));
  }
}

namespace {
template <typename Id>
Id Compose(const uint8_t* head, size_t head_len, const uint8_t* tail, size_t tail_len) {
  std::string bin(reinterpret_cast<const char*>(head), head_len);
  bin.append(reinterpret_cast<const char*>(tail), tail_len);
  return *Id::FromBinary(bin);
}
}  // namespace

JobId JobId::FromInt(uint32_t value) {
  uint8_t b[4];
  std::memcpy(b, &value, 4);
  return *JobId::FromBinary(std::string_view(reinterpret_cast<char*>(b), 4));
}

uint32_t JobId::ToInt() const {
  uint32_t v;
  std::memcpy(&v, bytes_.data(), 4);
  return v;
}

ActorId ActorId::Of(const JobId& job) {
  uint8_t rnd[12];
  FillRandom(rnd, sizeof(rnd));
  return Compose<ActorId>(rnd, 12, job.data(), JobId::kSize);
}

JobId ActorId::Job() const { return *JobId::FromBinary(Binary().substr(12)); }

TaskId TaskId::ForNormalTask(const JobId& job) {
  // A nil actor id carrying the job, so that Job() works for normal tasks too.
  ActorId nil_actor = *ActorId::FromBinary(std::string(12, '\xff') + job.Binary());
  return ForActorTask(nil_actor);
}

TaskId TaskId::ForActorTask(const ActorId& actor) {
  uint8_t rnd[8];
  FillRandom(rnd, sizeof(rnd));
  return Compose<TaskId>(rnd, 8, actor.data(), ActorId::kSize);
}

ActorId TaskId::Actor() const { return *ActorId::FromBinary(Binary().substr(8)); }

bool TaskId::IsForActor() const { return Binary().substr(8, 12) != std::string(12, '\xff'); }

ObjectId ObjectId::FromTask(const TaskId& task, uint32_t index) {
  uint8_t b[4];
  std::memcpy(b, &index, 4);
  return Compose<ObjectId>(task.data(), TaskId::kSize, b, 4);
}

TaskId ObjectId::Task() const { return *TaskId::FromBinary(Binary().substr(0, TaskId::kSize)); }

uint32_t ObjectId::Index() const {
  uint32_t v;
  std::memcpy(&v, bytes_.data() + TaskId::kSize, 4);
  return v;
}

}  // namespace shoal

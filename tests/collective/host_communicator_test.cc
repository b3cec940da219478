#include "src/collective/host_communicator.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>
#include <functional>
#include <numeric>
#include <thread>
#include <vector>

#include "src/collective/memory_key_value.h"

namespace shoal::collective {
namespace {

using namespace std::chrono_literals;

GroupOptions Options(const std::string& name, int world, int rank) {
  GroupOptions o;
  o.group_name = name;
  o.world_size = world;
  o.rank = rank;
  o.join_timeout = 10s;
  o.op_timeout = 10s;
  return o;
}

// Joins `world` ranks as threads of this process.
std::vector<std::unique_ptr<Communicator>> JoinAll(MemoryKeyValue& kv, const std::string& name, int world,
                                                   std::chrono::milliseconds op_timeout = 10s) {
  std::vector<std::unique_ptr<Communicator>> comms(static_cast<size_t>(world));
  std::vector<Status> results(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      GroupOptions o = Options(name, world, r);
      o.op_timeout = op_timeout;
      results[static_cast<size_t>(r)] = JoinHostGroup(o, kv, &comms[static_cast<size_t>(r)]);
    });
  }
  for (auto& t : threads) t.join();
  for (auto& s : results) REQUIRE(s.ok());
  return comms;
}

// Runs `body(rank)` on every rank at once; returns the statuses.
std::vector<Status> OnAll(int world, const std::function<Status(int)>& body) {
  std::vector<Status> results(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] { results[static_cast<size_t>(r)] = body(r); });
  }
  for (auto& t : threads) t.join();
  return results;
}

void RequireAllOk(const std::vector<Status>& results) {
  for (size_t r = 0; r < results.size(); ++r) {
    INFO("rank " << r << ": " << results[r].ToString());
    REQUIRE(results[r].ok());
  }
}

TEST_CASE("collectives give the right answers for 1 to 4 ranks", "[collective]") {
  for (int world = 1; world <= 4; ++world) {
    MemoryKeyValue kv;
    auto comms = JoinAll(kv, "g" + std::to_string(world), world);
    for (size_t count : {size_t{0}, size_t{1}, size_t{3}, size_t{1000}, size_t{100003}}) {
      INFO("world " << world << " count " << count);
      // allreduce: rank r holds r+1+i; SUM, MAX, MIN, PRODUCT (on small numbers).
      std::vector<std::vector<double>> data(static_cast<size_t>(world));
      RequireAllOk(OnAll(world, [&](int r) {
        auto& d = data[static_cast<size_t>(r)];
        d.resize(count);
        for (size_t i = 0; i < count; ++i) d[i] = r + 1 + static_cast<double>(i % 7);
        return comms[static_cast<size_t>(r)]->AllReduce(Buffer{d.data(), count, DataType::kFloat64}, ReduceOp::kSum);
      }));
      for (int r = 0; r < world; ++r) {
        for (size_t i = 0; i < count; ++i) {
          double expected = world * (world + 1) / 2.0 + world * static_cast<double>(i % 7);
          REQUIRE(data[static_cast<size_t>(r)][i] == expected);
        }
      }
      std::vector<std::vector<int64_t>> ints(static_cast<size_t>(world));
      for (ReduceOp op : {ReduceOp::kMax, ReduceOp::kMin, ReduceOp::kProduct}) {
        RequireAllOk(OnAll(world, [&](int r) {
          auto& d = ints[static_cast<size_t>(r)];
          d.assign(count, r + 2);
          return comms[static_cast<size_t>(r)]->AllReduce(Buffer{d.data(), count, DataType::kInt64}, op);
        }));
        int64_t expected = op == ReduceOp::kMax ? world + 1 : op == ReduceOp::kMin ? 2 : 1;
        if (op == ReduceOp::kProduct) {
          for (int r = 0; r < world; ++r) expected *= r + 2;
        }
        for (auto& d : ints) {
          for (int64_t v : d) REQUIRE(v == expected);
        }
      }
      // broadcast from the last rank.
      std::vector<std::vector<float>> b(static_cast<size_t>(world));
      int root = world - 1;
      RequireAllOk(OnAll(world, [&](int r) {
        auto& d = b[static_cast<size_t>(r)];
        d.assign(count, r == root ? 42.5f : -1.0f);
        return comms[static_cast<size_t>(r)]->Broadcast(Buffer{d.data(), count, DataType::kFloat32}, root);
      }));
      for (auto& d : b) {
        for (float v : d) REQUIRE(v == 42.5f);
      }
      // allgather: rank r contributes `count` copies of r.
      std::vector<std::vector<int32_t>> in(static_cast<size_t>(world)), out(static_cast<size_t>(world));
      RequireAllOk(OnAll(world, [&](int r) {
        in[static_cast<size_t>(r)].assign(count, r * 10);
        out[static_cast<size_t>(r)].assign(count * static_cast<size_t>(world), -1);
        return comms[static_cast<size_t>(r)]->AllGather(
            Buffer{in[static_cast<size_t>(r)].data(), count, DataType::kInt32},
            Buffer{out[static_cast<size_t>(r)].data(), count * static_cast<size_t>(world), DataType::kInt32});
      }));
      for (auto& o : out) {
        for (size_t i = 0; i < o.size(); ++i) REQUIRE(o[i] == static_cast<int32_t>(i / count) * 10);
      }
      // reducescatter: rank r's slice s holds r + s; rank s gets sum over r of (r + s).
      RequireAllOk(OnAll(world, [&](int r) {
        auto& src = out[static_cast<size_t>(r)];
        for (size_t i = 0; i < src.size(); ++i) src[i] = r + static_cast<int32_t>(i / count);
        in[static_cast<size_t>(r)].assign(count, -1);
        return comms[static_cast<size_t>(r)]->ReduceScatter(
            Buffer{src.data(), src.size(), DataType::kInt32},
            Buffer{in[static_cast<size_t>(r)].data(), count, DataType::kInt32}, ReduceOp::kSum);
      }));
      for (int s = 0; s < world; ++s) {
        for (int32_t v : in[static_cast<size_t>(s)]) REQUIRE(v == world * (world - 1) / 2 + world * s);
      }
      // reduce to rank 0: others keep their data.
      RequireAllOk(OnAll(world, [&](int r) {
        auto& d = ints[static_cast<size_t>(r)];
        d.assign(count, r + 1);
        return comms[static_cast<size_t>(r)]->Reduce(Buffer{d.data(), count, DataType::kInt64}, 0, ReduceOp::kSum);
      }));
      for (int r = 0; r < world; ++r) {
        for (int64_t v : ints[static_cast<size_t>(r)]) REQUIRE(v == (r == 0 ? world * (world + 1) / 2 : r + 1));
      }
      RequireAllOk(OnAll(world, [&](int r) { return comms[static_cast<size_t>(r)]->Barrier(); }));
    }
  }
}

TEST_CASE("send and recv pair up in order", "[collective]") {
  MemoryKeyValue kv;
  auto comms = JoinAll(kv, "p2p", 3);
  std::vector<uint8_t> got1(5), got2(5);
  RequireAllOk(OnAll(3, [&](int r) -> Status {
    auto& c = *comms[static_cast<size_t>(r)];
    if (r == 0) {
      uint8_t a[5] = {1, 2, 3, 4, 5}, b[5] = {9, 9, 9, 9, 9};
      SHOAL_COLLECTIVE_RETURN_IF_ERROR(c.Send(Buffer{a, 5, DataType::kUint8}, 2));
      return c.Send(Buffer{b, 5, DataType::kUint8}, 2);
    }
    if (r == 2) {
      SHOAL_COLLECTIVE_RETURN_IF_ERROR(c.Recv(Buffer{got1.data(), 5, DataType::kUint8}, 0));
      return c.Recv(Buffer{got2.data(), 5, DataType::kUint8}, 0);
    }
    return Status::Ok();
  }));
  REQUIRE(got1 == std::vector<uint8_t>{1, 2, 3, 4, 5});
  REQUIRE(got2 == std::vector<uint8_t>(5, 9));
  REQUIRE(comms[0]->Send(Buffer{got1.data(), 5, DataType::kUint8}, 7).code() == Code::kInvalidArgument);
  // A refused call aborts the group (its peers must not wait for it): later calls say so.
  REQUIRE(comms[0]->Send(Buffer{got1.data(), 5, DataType::kUint8}, 0).code() == Code::kFailedPrecondition);
}

TEST_CASE("half-precision reductions are exact on small integers", "[collective]") {
  MemoryKeyValue kv;
  auto comms = JoinAll(kv, "half", 2);
  // 1.0, 2.0, 3.0 as float16 (0x3c00, 0x4000, 0x4200) and bfloat16 (0x3f80, 0x4000, 0x4040).
  std::vector<std::vector<uint16_t>> h = {{0x3c00, 0x4000, 0x4200}, {0x3c00, 0x4000, 0x4200}};
  std::vector<std::vector<uint16_t>> bf = {{0x3f80, 0x4000, 0x4040}, {0x3f80, 0x4000, 0x4040}};
  RequireAllOk(OnAll(2, [&](int r) -> Status {
    auto& c = *comms[static_cast<size_t>(r)];
    SHOAL_COLLECTIVE_RETURN_IF_ERROR(c.AllReduce(Buffer{h[static_cast<size_t>(r)].data(), 3, DataType::kFloat16},
                                                 ReduceOp::kSum));
    return c.AllReduce(Buffer{bf[static_cast<size_t>(r)].data(), 3, DataType::kBFloat16}, ReduceOp::kSum);
  }));
  REQUIRE(h[0] == std::vector<uint16_t>{0x4000, 0x4400, 0x4600});   // 2, 4, 6
  REQUIRE(bf[1] == std::vector<uint16_t>{0x4000, 0x4080, 0x40c0});  // 2, 4, 6
}

TEST_CASE("mismatched calls fail clearly on both sides instead of hanging", "[collective]") {
  MemoryKeyValue kv;
  auto comms = JoinAll(kv, "mismatch", 2, 5s);
  std::vector<float> a(8, 1.0f), b(4, 1.0f);
  auto results = OnAll(2, [&](int r) {
    return r == 0 ? comms[0]->AllReduce(Buffer{a.data(), 8, DataType::kFloat32}, ReduceOp::kSum)
                  : comms[1]->AllReduce(Buffer{b.data(), 4, DataType::kFloat32}, ReduceOp::kSum);
  });
  REQUIRE(!results[0].ok());
  REQUIRE(!results[1].ok());
  bool clear = false;
  for (auto& s : results) {
    if (s.code() == Code::kInvalidArgument && s.message().find("allreduce of 8 float32") != std::string::npos &&
        s.message().find("allreduce of 4 float32") != std::string::npos) {
      clear = true;
    }
  }
  REQUIRE(clear);
  // The group is aborted now: later calls say so.
  auto later = comms[0]->Barrier();
  REQUIRE(later.code() == Code::kFailedPrecondition);
  REQUIRE(later.message().find("destroy it") != std::string::npos);

  MemoryKeyValue kv2;
  auto other = JoinAll(kv2, "mismatch-kind", 2, 5s);
  auto kinds = OnAll(2, [&](int r) {
    return r == 0 ? other[0]->AllReduce(Buffer{a.data(), 8, DataType::kFloat32}, ReduceOp::kSum)
                  : other[1]->Broadcast(Buffer{a.data(), 8, DataType::kFloat32}, 0);
  });
  REQUIRE(!kinds[0].ok());
  REQUIRE(!kinds[1].ok());
}

TEST_CASE("a peer that leaves mid-operation fails the others at once", "[collective]") {
  MemoryKeyValue kv;
  auto comms = JoinAll(kv, "leave", 3, 60s);
  std::vector<float> data(1 << 20, 1.0f);
  auto start = std::chrono::steady_clock::now();
  std::thread killer([&] {
    std::this_thread::sleep_for(200ms);
    comms[2].reset();  // closes its connections, as a killed process's kernel would
  });
  auto results = OnAll(2, [&](int r) {
    return comms[static_cast<size_t>(r)]->AllReduce(Buffer{data.data(), data.size(), DataType::kFloat32},
                                                    ReduceOp::kSum);
  });
  killer.join();
  for (auto& s : results) {
    INFO(s.ToString());
    REQUIRE((s.code() == Code::kAborted || s.code() == Code::kFailedPrecondition));
  }
  // Failed well within the 60 s operation timeout.
  REQUIRE(std::chrono::steady_clock::now() - start < 30s);
}

TEST_CASE("a peer that never calls fails the others after the operation timeout", "[collective]") {
  MemoryKeyValue kv;
  auto comms = JoinAll(kv, "stuck", 2, 300ms);
  float x = 1;
  Status s = comms[0]->AllReduce(Buffer{&x, 1, DataType::kFloat32}, ReduceOp::kSum);
  REQUIRE(s.code() == Code::kDeadlineExceeded);
  REQUIRE(s.message().find("rank 1") != std::string::npos);
  std::string why;
  REQUIRE_FALSE(comms[0]->Healthy(&why));
}

TEST_CASE("joining: bad options, a rank claimed twice, disagreeing world sizes, absent ranks", "[collective]") {
  MemoryKeyValue kv;
  std::unique_ptr<Communicator> c;
  REQUIRE(JoinHostGroup(Options("", 2, 0), kv, &c).code() == Code::kInvalidArgument);
  REQUIRE(JoinHostGroup(Options("g", 0, 0), kv, &c).code() == Code::kInvalidArgument);
  REQUIRE(JoinHostGroup(Options("g", 2, 2), kv, &c).code() == Code::kInvalidArgument);
  GroupOptions bad_host = Options("g", 1, 0);
  bad_host.bind_host = "not-an-ip";
  REQUIRE(JoinHostGroup(bad_host, kv, &c).code() == Code::kInvalidArgument);

  SECTION("a live rank cannot be claimed by a second process") {
    auto comms = JoinAll(kv, "twice", 2);
    GroupOptions again = Options("twice", 2, 1);
    again.join_timeout = 3s;
    Status s = JoinHostGroup(again, kv, &c);
    REQUIRE(s.code() == Code::kAlreadyExists);
    REQUIRE(s.message().find("rank 1") != std::string::npos);
    // The group still works.
    RequireAllOk(OnAll(2, [&](int r) { return comms[static_cast<size_t>(r)]->Barrier(); }));
  }
  SECTION("a stale key of a dead rank is replaced") {
    bool added = false;
    REQUIRE(kv.Put(RankKey("stale", 0), "127.0.0.1:1|00000000000000ff", true, &added).ok());
    auto comms = JoinAll(kv, "stale", 2);
    REQUIRE(comms.size() == 2);
  }
  SECTION("ranks that disagree on the world size") {
    auto results = OnAll(2, [&](int r) {
      GroupOptions o = Options("worlds", r == 0 ? 2 : 3, r);
      o.join_timeout = 3s;
      std::unique_ptr<Communicator> mine;
      return JoinHostGroup(o, kv, &mine);
    });
    REQUIRE(results[1].code() == Code::kInvalidArgument);
    REQUIRE(results[1].message().find("world size") != std::string::npos);
  }
  SECTION("a rank that never arrives") {
    GroupOptions o = Options("absent", 2, 0);
    o.join_timeout = 500ms;
    Status s = JoinHostGroup(o, kv, &c);
    REQUIRE(s.code() == Code::kDeadlineExceeded);
    REQUIRE(s.message().find("ranks 1 did not join") != std::string::npos);
    std::string value;
    REQUIRE(kv.Get(RankKey("absent", 0), &value).code() == Code::kNotFound);  // cleaned up
  }
}

TEST_CASE("host buffers only on the host backend", "[collective]") {
  MemoryKeyValue kv;
  auto comms = JoinAll(kv, "device", 1);
  float x = 0;
  Status s = comms[0]->AllReduce(Buffer{&x, 1, DataType::kFloat32, /*device=*/0}, ReduceOp::kSum);
  REQUIRE(s.code() == Code::kInvalidArgument);
  REQUIRE(s.message().find("nccl") != std::string::npos);
}

TEST_CASE("type and op names", "[collective]") {
  REQUIRE(ParseDataType("bfloat16") == DataType::kBFloat16);
  REQUIRE(!ParseDataType("complex64"));
  REQUIRE(ParseReduceOp("PRODUCT") == ReduceOp::kProduct);
  REQUIRE(std::string(DataTypeName(DataType::kUint8)) == "uint8");
  REQUIRE(SizeOf(DataType::kFloat16) == 2);
}

}  // namespace
}  // namespace shoal::collective

namespace shoal::collective {
namespace {

TEST_CASE("a call one rank refuses by itself fails its peers at once, not after the timeout",
          "[collective]") {
  MemoryKeyValue kv;
  auto comms = JoinAll(kv, "refused", 2, 60s);
  std::vector<float> data(16, 1.0f);
  auto start = std::chrono::steady_clock::now();
  auto results = OnAll(2, [&](int r) {
    if (r == 0) {
      std::this_thread::sleep_for(100ms);  // rank 1 is waiting inside the allreduce by now
      return comms[0]->AllReduce(Buffer{data.data(), data.size(), DataType::kFloat32, /*device=*/0}, ReduceOp::kSum);
    }
    std::vector<float> mine(16, 1.0f);
    return comms[1]->AllReduce(Buffer{mine.data(), mine.size(), DataType::kFloat32}, ReduceOp::kSum);
  });
  REQUIRE(results[0].code() == Code::kInvalidArgument);
  REQUIRE(results[1].code() == Code::kAborted);
  REQUIRE(std::chrono::steady_clock::now() - start < 30s);
}

}  // namespace
}  // namespace shoal::collective

// The C++ actor API without a cluster: registration names and keys, handles as values, errors
// before anything is sent, and what a worker does with factory and method calls.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "shoal/api.h"
#include "src/worker/core_worker.h"
#include "src/worker/function_registry.h"

namespace {

class Counter {
 public:
  static Counter* Create(int start) { return new Counter(start); }
  int Add(int n) { return value_ += n; }
  int Sub(int n) { return value_ -= n; }
  int Get() const { return value_; }
  void Reset() noexcept { value_ = 0; }
  int Fail(const std::string& why) { throw std::domain_error(why); }
  int Unregistered() { return 0; }

 private:
  explicit Counter(int start) : value_(start) {}
  int value_;
};

class Other {
 public:
  static Other* Make() { return new Other; }
  static Other* Null() { return nullptr; }
  int Ping() const { return 1; }
};

Counter* NotRegisteredFactory() { return nullptr; }

}  // namespace

SHOAL_REMOTE(Counter::Create, &Counter::Add, &Counter::Sub, &Counter::Get, &Counter::Reset, &Counter::Fail);
SHOAL_REMOTE(Other::Make, Other::Null, &Other::Ping);

using shoal::internal::FindFunctionName;
using shoal::internal::FindMethodName;
using shoal::internal::KeyOf;
using shoal::internal::MethodKeyOf;
using shoal::internal::Pack;

namespace {

// Runs the task function registered as `name`, as a worker would.
absl::StatusOr<std::string> Run(const std::string& name, const std::vector<std::string>& args) {
  const shoal::TaskFunction* fn = shoal::FindTaskFunction(name);
  if (fn == nullptr) return absl::NotFoundError(name);
  return (*fn)(args);
}

int AsInt(const absl::StatusOr<std::string>& bytes) {
  REQUIRE(bytes.ok());
  return shoal::internal::Unpack<int>(*bytes, [] { return std::string("result"); });
}

std::string Message(const absl::StatusOr<std::string>& result) {
  REQUIRE_FALSE(result.ok());
  return std::string(result.status().message());
}

}  // namespace

TEST_CASE("SHOAL_REMOTE names actor factories and methods as written, without the &") {
  REQUIRE(FindFunctionName(KeyOf(Counter::Create)) != nullptr);
  CHECK(*FindFunctionName(KeyOf(Counter::Create)) == "Counter::Create");
  REQUIRE(FindMethodName(MethodKeyOf(&Counter::Add)) != nullptr);
  CHECK(*FindMethodName(MethodKeyOf(&Counter::Add)) == "Counter::Add");
  CHECK(*FindMethodName(MethodKeyOf(&Counter::Sub)) == "Counter::Sub");
  CHECK(*FindMethodName(MethodKeyOf(&Counter::Get)) == "Counter::Get");      // const
  CHECK(*FindMethodName(MethodKeyOf(&Counter::Reset)) == "Counter::Reset");  // noexcept
  CHECK(*FindMethodName(MethodKeyOf(&Other::Ping)) == "Other::Ping");
  CHECK(FindMethodName(MethodKeyOf(&Counter::Unregistered)) == nullptr);
  CHECK(FindFunctionName(KeyOf(NotRegisteredFactory)) == nullptr);
  // Same signature, different methods: different keys; the same method: the same key.
  CHECK(MethodKeyOf(&Counter::Add) != MethodKeyOf(&Counter::Sub));
  CHECK(MethodKeyOf(&Counter::Add) == MethodKeyOf(&Counter::Add));
  // Methods are task functions by name, as functions are.
  CHECK(shoal::FindTaskFunction("Counter::Add") != nullptr);
  CHECK(shoal::FindTaskFunction("Counter::Create") != nullptr);
}

TEST_CASE("actor handles are values that travel as the actor id and max_task_retries") {
  shoal::ActorHandle<Counter> nil;
  CHECK(nil.IsNil());
  CHECK_THROWS_WITH(nil.Task(&Counter::Add), Catch::Contains("nil"));
  CHECK_THROWS_WITH(nil.Kill(), Catch::Contains("nil"));

  shoal::internal::ActorIdBytes id;
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(i * 7);
  shoal::ActorHandle<Counter> handle(id, 3);
  shoal::ActorHandle<Counter> copy = handle;
  CHECK(copy == handle);
  auto back = shoal::internal::Unpack<shoal::ActorHandle<Counter>>(Pack(handle), [] { return std::string("h"); });
  CHECK(back == handle);
  CHECK(back.max_task_retries() == 3);
  CHECK(back.Hex() == handle.Hex());
  CHECK(back.Hex().size() == 32);
  // Inside other values too.
  std::vector<shoal::ActorHandle<Counter>> many = {handle, handle};
  auto many_back = shoal::internal::Unpack<decltype(many)>(Pack(many), [] { return std::string("v"); });
  CHECK(many_back == many);
  // Anything else is a clear error.
  CHECK_THROWS_WITH(
      shoal::internal::Unpack<shoal::ActorHandle<Counter>>(Pack(42), [] { return std::string("argument 1 of F"); }),
      Catch::Contains("cannot deserialize argument 1 of F"));
  CHECK_THROWS_AS(
      shoal::internal::Unpack<shoal::ActorHandle<Counter>>(Pack(std::make_tuple(std::string("short"), 1)),
                                                           [] { return std::string("h"); }),
      shoal::Error);
}

TEST_CASE("actor misuse is caught at Remote(), before anything is sent") {
  CHECK_THROWS_WITH(shoal::Actor(NotRegisteredFactory).Remote(), Catch::Contains("SHOAL_REMOTE"));
  CHECK_THROWS_WITH(shoal::Actor(Counter::Create).Remote(1), Catch::Contains("shoal::Init"));
  CHECK_THROWS_WITH(shoal::Actor(Counter::Create).SetResources({{"GPU", 1.5}}).Remote(1),
                    Catch::Contains("bad resources for Counter::Create"));
  shoal::internal::ActorIdBytes id{};
  shoal::ActorHandle<Counter> handle(id, 0);
  CHECK_THROWS_WITH(handle.Task(&Counter::Unregistered).Remote(), Catch::Contains("SHOAL_REMOTE(&Class::Method)"));
  CHECK_THROWS_WITH(handle.Task(&Counter::Add).Remote(1), Catch::Contains("shoal::Init"));
  CHECK_THROWS_WITH(shoal::GetActor<Counter>("x"), Catch::Contains("shoal::Init"));
  CHECK_THROWS_WITH(handle.Kill(), Catch::Contains("shoal::Init"));
}

TEST_CASE("ActorDiedError is a shoal::Error") {
  shoal::ActorDiedError e("the actor's constructor raised std::runtime_error: boom");
  const shoal::Error& base = e;
  CHECK(std::string(base.what()).find("boom") != std::string::npos);
}

// One actor per process: this is the only test case that creates one.
TEST_CASE("a worker runs the factory once, then methods on that instance, misuse is an error, not a crash") {
  CHECK_THAT(Message(Run("Counter::Add", {Pack(1)})), Catch::Contains("hosts no actor"));
  CHECK_THAT(Message(Run("Other::Null", {})), Catch::Contains("Other::Null returned null"));
  CHECK_THAT(Message(Run("Counter::Add", {Pack(1)})), Catch::Contains("hosts no actor"));

  auto created = Run("Counter::Create", {Pack(10)});
  REQUIRE(created.ok());
  CHECK(*created == shoal::internal::PackNil());
  CHECK(AsInt(Run("Counter::Add", {Pack(5)})) == 15);
  CHECK(AsInt(Run("Counter::Sub", {Pack(1)})) == 14);
  CHECK(AsInt(Run("Counter::Get", {})) == 14);

  // A method that throws: an application error with the exception's type; the actor lives on.
  auto failed = Run("Counter::Fail", {Pack(std::string("no"))});
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.status().code() == absl::StatusCode::kAborted);
  CHECK(shoal::ErrorInfoOf(failed.status())->exception_type() == "std::domain_error");
  CHECK(failed.status().message() == "no");
  CHECK(AsInt(Run("Counter::Get", {})) == 14);

  // Bad calls.
  CHECK_THAT(Message(Run("Counter::Add", {})), Catch::Contains("takes 1 arguments, got 0"));
  CHECK_THAT(Message(Run("Counter::Add", {Pack(std::string("x"))})), Catch::Contains("argument 1 of Counter::Add"));
  CHECK_THAT(Message(Run("Other::Ping", {})), Catch::Contains("is a method of") && Catch::Contains("Other") &&
                                                  Catch::Contains("but this actor is a") && Catch::Contains("Counter"));
  CHECK_THAT(Message(Run("Other::Make", {})), Catch::Contains("already hosts an actor"));
  CHECK(Run("Counter::Reset", {}).ok());
  CHECK(AsInt(Run("Counter::Get", {})) == 0);
}

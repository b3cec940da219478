#include "src/common/flags.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

// argv for Parse(), owning its strings. argv[0] is the program.
class Args {
 public:
  Args(std::initializer_list<std::string> args) : strings_{"prog"} {
    strings_.insert(strings_.end(), args.begin(), args.end());
    for (auto& s : strings_) ptrs_.push_back(s.data());
    ptrs_.push_back(nullptr);
  }
  int argc() const { return static_cast<int>(strings_.size()); }
  char** argv() { return ptrs_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> ptrs_;
};

// Sets an environment variable for the scope and restores the old value after.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const char* value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    if (value == nullptr) {
      unsetenv(name_.c_str());
    } else {
      setenv(name_.c_str(), value, 1);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// The flags every case uses. Names are unusual enough not to meet a real SHOAL_* variable.
struct Flags {
  std::string address = "127.0.0.1:6379";
  int64_t port = 1234;
  double cpus = 1.5;
  bool verbose = false;
  bool colour = true;
  FlagSet set{"prog"};
  Flags() {
    set.AddString("test-address", &address, "where to go");
    set.AddInt("test-port", &port, "which port");
    set.AddDouble("test-cpus", &cpus, "how many CPUs");
    set.AddBool("test-verbose", &verbose, "say more");
    set.AddBool("test-colour", &colour, "use colour");
  }
  absl::Status Parse(Args args) { return set.Parse(args.argc(), args.argv()); }
};

TEST_CASE("FlagSet leaves defaults when nothing is given", "[flags]") {
  Flags f;
  REQUIRE_OK(f.Parse({}));
  CHECK(f.address == "127.0.0.1:6379");
  CHECK(f.port == 1234);
  CHECK(f.cpus == 1.5);
  CHECK_FALSE(f.verbose);
  CHECK(f.colour);
  CHECK_FALSE(f.set.WasSet("test-port"));
  CHECK(f.set.positional().empty());
}

TEST_CASE("FlagSet parses --name value and --name=value", "[flags]") {
  Flags f;
  REQUIRE_OK(f.Parse({"--test-address", "10.0.0.1:1", "--test-port=99", "--test-cpus", "0.25"}));
  CHECK(f.address == "10.0.0.1:1");
  CHECK(f.port == 99);
  CHECK(f.cpus == 0.25);
  CHECK(f.set.WasSet("test-address"));
  CHECK(f.set.WasSet("test-port"));
  CHECK(f.set.WasSet("test-cpus"));
  CHECK_FALSE(f.set.WasSet("test-verbose"));
  CHECK_FALSE(f.set.WasSet("no-such-flag"));
}

TEST_CASE("FlagSet appends each value of a list flag", "[flags]") {
  FlagSet set{"prog"};
  std::vector<std::string> filters;
  set.AddStringList("test-filter", &filters, "a filter");
  std::vector<std::string> words = {"prog", "--test-filter", "state=ALIVE", "actors", "--test-filter=name!=x"};
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  REQUIRE_OK(set.Parse(static_cast<int>(argv.size()), argv.data()));
  CHECK(filters == std::vector<std::string>{"state=ALIVE", "name!=x"});
  CHECK(set.positional() == std::vector<std::string>{"actors"});
}

TEST_CASE("FlagSet keeps everything after the first = in the value", "[flags]") {
  Flags f;
  REQUIRE_OK(f.Parse({"--test-address=a=b", "--test-port=-7"}));
  CHECK(f.address == "a=b");
  CHECK(f.port == -7);
  Flags g;
  REQUIRE_OK(g.Parse({"--test-address="}));
  CHECK(g.address.empty());
  CHECK(g.set.WasSet("test-address"));
}

TEST_CASE("FlagSet bool flags", "[flags]") {
  Flags f;
  SECTION("bare flag sets true") {
    REQUIRE_OK(f.Parse({"--test-verbose"}));
    CHECK(f.verbose);
  }
  SECTION("--no-flag sets false") {
    REQUIRE_OK(f.Parse({"--no-test-colour"}));
    CHECK_FALSE(f.colour);
    CHECK(f.set.WasSet("test-colour"));
  }
  SECTION("explicit values") {
    REQUIRE_OK(f.Parse({"--test-verbose=true", "--test-colour=false"}));
    CHECK(f.verbose);
    CHECK_FALSE(f.colour);
  }
  SECTION("a bool flag does not eat the next argument") {
    REQUIRE_OK(f.Parse({"--test-verbose", "script.py"}));
    CHECK(f.verbose);
    CHECK(f.set.positional() == std::vector<std::string>{"script.py"});
  }
  SECTION("a bad bool value") {
    CHECK_CODE(f.Parse({"--test-verbose=maybe"}), kInvalidArgument);
  }
  SECTION("--no- on a flag that is not bool is unknown") {
    CHECK_CODE(f.Parse({"--no-test-port"}), kInvalidArgument);
  }
}

TEST_CASE("FlagSet rejects unknown flags, missing values and bad numbers", "[flags]") {
  Flags f;
  SECTION("unknown flag, named in the message") {
    auto s = f.Parse({"--test-bogus", "1"});
    CHECK_CODE(s, kInvalidArgument);
    CHECK_THAT(std::string(s.message()), Catch::Matchers::Contains("test-bogus"));
  }
  SECTION("unknown --no- flag") { CHECK_CODE(f.Parse({"--no-test-bogus"}), kInvalidArgument); }
  SECTION("unknown flag with =") { CHECK_CODE(f.Parse({"--test-bogus=1"}), kInvalidArgument); }
  SECTION("missing value at the end") {
    auto s = f.Parse({"--test-address"});
    CHECK_CODE(s, kInvalidArgument);
    CHECK_THAT(std::string(s.message()), Catch::Matchers::Contains("test-address"));
  }
  SECTION("bad int") {
    auto s = f.Parse({"--test-port", "abc"});
    CHECK_CODE(s, kInvalidArgument);
    CHECK_THAT(std::string(s.message()), Catch::Matchers::Contains("abc"));
    CHECK_CODE(Flags().Parse({"--test-port=12x"}), kInvalidArgument);
    CHECK_CODE(Flags().Parse({"--test-port=1.5"}), kInvalidArgument);
    CHECK_CODE(Flags().Parse({"--test-port="}), kInvalidArgument);
    CHECK_CODE(Flags().Parse({"--test-port=99999999999999999999"}), kInvalidArgument);
  }
  SECTION("bad double") {
    CHECK_CODE(f.Parse({"--test-cpus", "lots"}), kInvalidArgument);
  }
}

TEST_CASE("FlagSet takes SHOAL_<NAME> from the environment", "[flags]") {
  ScopedEnv port("SHOAL_TEST_PORT", "4321");
  ScopedEnv address("SHOAL_TEST_ADDRESS", "10.1.2.3:7");
  ScopedEnv verbose("SHOAL_TEST_VERBOSE", "true");
  ScopedEnv colour("SHOAL_TEST_COLOUR", nullptr);
  ScopedEnv cpus("SHOAL_TEST_CPUS", nullptr);
  Flags f;
  SECTION("when the flag is not on the command line") {
    REQUIRE_OK(f.Parse({}));
    CHECK(f.port == 4321);
    CHECK(f.address == "10.1.2.3:7");
    CHECK(f.verbose);
    CHECK(f.colour);  // unset variable: default
    CHECK(f.set.WasSet("test-port"));
    CHECK_FALSE(f.set.WasSet("test-colour"));
  }
  SECTION("the command line wins") {
    REQUIRE_OK(f.Parse({"--test-port", "1", "--no-test-verbose"}));
    CHECK(f.port == 1);
    CHECK_FALSE(f.verbose);
    CHECK(f.address == "10.1.2.3:7");
  }
  SECTION("an empty variable counts as unset") {
    ScopedEnv empty("SHOAL_TEST_CPUS", "");
    REQUIRE_OK(f.Parse({}));
    CHECK(f.cpus == 1.5);
    CHECK_FALSE(f.set.WasSet("test-cpus"));
  }
  SECTION("a bad value names the variable") {
    ScopedEnv bad("SHOAL_TEST_CPUS", "many");
    auto s = f.Parse({});
    CHECK_CODE(s, kInvalidArgument);
    CHECK_THAT(std::string(s.message()), Catch::Matchers::Contains("SHOAL_TEST_CPUS"));
  }
}

TEST_CASE("FlagSet keeps positional arguments", "[flags]") {
  Flags f;
  SECTION("everything after -- is positional, flags included") {
    REQUIRE_OK(f.Parse({"--test-port", "5", "--", "--test-port", "6", "--bogus", "x"}));
    CHECK(f.port == 5);
    CHECK(f.set.positional() == std::vector<std::string>{"--test-port", "6", "--bogus", "x"});
  }
  SECTION("non-flags mix with flags") {
    REQUIRE_OK(f.Parse({"run", "--test-port=5", "file.py", "-x"}));
    CHECK(f.port == 5);
    CHECK(f.set.positional() == std::vector<std::string>{"run", "file.py", "-x"});
  }
  SECTION("a trailing -- adds nothing") {
    REQUIRE_OK(f.Parse({"--"}));
    CHECK(f.set.positional().empty());
  }
}

TEST_CASE("FlagSet Parse can start after a subcommand", "[flags]") {
  Flags f;
  Args args{"start", "--test-port", "8"};
  REQUIRE_OK(f.set.Parse(args.argc(), args.argv(), /*first=*/2));
  CHECK(f.port == 8);
  CHECK(f.set.positional().empty());
}

TEST_CASE("FlagSet --help answers Cancelled and Usage lists the flags", "[flags]") {
  Flags f;
  CHECK_CODE(f.Parse({"--help"}), kCancelled);
  CHECK_CODE(Flags().Parse({"--test-port", "1", "-h"}), kCancelled);
  const std::string usage = f.set.Usage();
  CHECK_THAT(usage, Catch::Matchers::Contains("prog"));
  CHECK_THAT(usage, Catch::Matchers::Contains("--test-address"));
  CHECK_THAT(usage, Catch::Matchers::Contains("where to go"));
  CHECK_THAT(usage, Catch::Matchers::Contains("1234"));  // default
}

}  // namespace
}  // namespace shoal

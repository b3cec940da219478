#include "src/scheduler/label_selector.h"

#include <catch2/catch.hpp>

#include <string>

#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

LabelSelector Parsed(const Labels& selector) {
  auto parsed = LabelSelector::Parse(selector);
  REQUIRE_OK(parsed);
  return *parsed;
}

TEST_CASE("LabelSelector: the empty selector matches every node", "[scheduler][labels]") {
  LabelSelector any;
  CHECK(any.empty());
  CHECK(any.Matches({}));
  CHECK(any.Matches({{"zone", "a"}}));
  CHECK(Parsed({}).empty());
  CHECK(any.ToString() == "{}");
}

TEST_CASE("LabelSelector: equal, not equal, in and not in", "[scheduler][labels]") {
  const Labels a = {{"zone", "a"}, {"gpu", "h100"}};
  const Labels b = {{"zone", "b"}};
  const Labels none = {{"other", "x"}};

  LabelSelector eq = Parsed({{"zone", "a"}});
  CHECK(eq.Matches(a));
  CHECK_FALSE(eq.Matches(b));
  CHECK_FALSE(eq.Matches(none));  // a positive condition needs the key

  LabelSelector ne = Parsed({{"zone", "!a"}});
  CHECK_FALSE(ne.Matches(a));
  CHECK(ne.Matches(b));
  CHECK(ne.Matches(none));  // a negative condition passes without the key

  LabelSelector in = Parsed({{"zone", "in(a,c)"}});
  CHECK(in.Matches(a));
  CHECK_FALSE(in.Matches(b));
  CHECK_FALSE(in.Matches(none));
  CHECK(Parsed({{"zone", "in(c, b)"}}).Matches(b));  // one space after a comma is allowed

  LabelSelector not_in = Parsed({{"zone", "!in(a,c)"}});
  CHECK_FALSE(not_in.Matches(a));
  CHECK(not_in.Matches(b));
  CHECK(not_in.Matches(none));

  // Every key must match.
  LabelSelector both = Parsed({{"zone", "a"}, {"gpu", "in(h100,a100)"}});
  CHECK(both.Matches(a));
  CHECK_FALSE(both.Matches({{"zone", "a"}}));
  CHECK_FALSE(both.Matches({{"zone", "b"}, {"gpu", "h100"}}));
  CHECK(both.ToString() == "{gpu: in(h100,a100), zone: a}");

  // The empty value matches an empty label value only.
  LabelSelector empty_value = Parsed({{"zone", ""}});
  CHECK(empty_value.Matches({{"zone", ""}}));
  CHECK_FALSE(empty_value.Matches(a));
  CHECK_FALSE(empty_value.Matches(none));

  // Keys with a prefix.
  CHECK(Parsed({{"shoal.io/zone", "a"}}).Matches({{"shoal.io/zone", "a"}}));
}

TEST_CASE("LabelSelector: malformed keys and values are InvalidArgument naming the key",
          "[scheduler][labels][validation]") {
  for (const std::string& key :
       {std::string(""), std::string("-zone"), std::string("zone-"), std::string("zo ne"),
        std::string("a/b/c"), std::string("/zone"), std::string(".x/zone"), std::string(64, 'k'),
        std::string("pre..fix/zone"), std::string("zone/")}) {
    INFO("key '" << key << "'");
    auto parsed = LabelSelector::Parse(Labels{{key, "a"}});
    REQUIRE(absl::IsInvalidArgument(parsed.status()));
    CHECK_THAT(std::string(parsed.status().message()), Catch::Contains("`" + key + "`"));
  }
  for (const std::string& value :
       {"in()", "!in()", "in(a,)", "in(,a)", "in(a", "(a)", "!(a)", "!!a", "!", "-a", "a-", "a b",
        "in(a,-b)", "in(a,  b)", "notin(a)", "a,b"}) {
    INFO("value '" << value << "'");
    auto parsed = LabelSelector::Parse(Labels{{"zone", value}});
    REQUIRE(absl::IsInvalidArgument(parsed.status()));
    CHECK_THAT(std::string(parsed.status().message()), Catch::Contains("`zone`"));
  }
  CHECK(absl::IsInvalidArgument(
      LabelSelector::Parse(Labels{{"zone", std::string(64, 'v')}}).status()));
  CHECK_OK(LabelSelector::Parse(Labels{{"zone", std::string(63, 'v')}}));
}

}  // namespace
}  // namespace shoal

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "src/gcs/fake_node_change_listener.h"
#include "src/gcs/gcs_tables.h"

namespace shoal {
namespace {

std::shared_ptr<FakeNodeChangeListener> Subscribed(NodeChangeFeed& feed) {
  auto listener = FakeNodeChangeListener::Subscribe(feed);
  REQUIRE(listener != nullptr);
  return listener;
}

TEST_CASE("NodeChangeFeed Close tells every subscriber once and refuses new ones", "[gcs][tables][feed]") {
  NodeChangeFeed feed;
  auto a = Subscribed(feed);
  auto b = Subscribed(feed);
  CHECK(feed.NumSubscribers() == 2);
  feed.Close();
  feed.Close();
  CHECK(a->closed() == 1);
  CHECK(b->closed() == 1);
  CHECK(feed.NumSubscribers() == 0);
  CHECK_FALSE(feed.Subscribe(std::make_shared<FakeNodeChangeListener>()));
  rpc::NodeInfo node;
  node.set_node_id("abc");
  feed.Publish(node);
  CHECK_FALSE(a->Next().has_value());
}

// A subscriber may leave from inside a delivery (a stream whose call ends as it is written).
class LeavingListener : public FakeNodeChangeListener {
 public:
  explicit LeavingListener(NodeChangeFeed& feed) : feed_(feed) {}
  void OnNodeChange(const rpc::NodeInfo& node) override {
    FakeNodeChangeListener::OnNodeChange(node);
    feed_.Unsubscribe(this);
  }

 private:
  NodeChangeFeed& feed_;
};

TEST_CASE("NodeChangeFeed lets a listener unsubscribe while it is told of a change", "[gcs][tables][feed]") {
  NodeChangeFeed feed;
  auto leaving = std::make_shared<LeavingListener>(feed);
  REQUIRE(feed.Subscribe(leaving));
  auto staying = Subscribed(feed);
  rpc::NodeInfo node;
  node.set_node_id("first");
  feed.Publish(node);
  node.set_node_id("second");
  feed.Publish(node);
  CHECK(leaving->Next()->node_id() == "first");
  CHECK_FALSE(leaving->Next().has_value());
  CHECK(staying->Next()->node_id() == "first");
  CHECK(staying->Next()->node_id() == "second");
  CHECK(feed.NumSubscribers() == 1);
}

TEST_CASE("NodeChangeFeed delivers concurrent publishes in one order to every subscriber", "[gcs][tables][feed]") {
  NodeChangeFeed feed;
  auto a = Subscribed(feed);
  auto b = Subscribed(feed);
  std::vector<std::thread> publishers;
  for (int t = 0; t < 4; ++t) {
    publishers.emplace_back([&feed, t] {
      for (int i = 0; i < 200; ++i) {
        rpc::NodeInfo node;
        node.set_node_id(std::to_string(t) + ":" + std::to_string(i));
        feed.Publish(node);
      }
    });
  }
  for (auto& p : publishers) p.join();
  std::vector<std::string> seen_a, seen_b;
  while (auto n = a->Next()) seen_a.push_back(n->node_id());
  while (auto n = b->Next()) seen_b.push_back(n->node_id());
  CHECK(seen_a.size() == 800);
  CHECK(seen_a == seen_b);
}

}  // namespace
}  // namespace shoal

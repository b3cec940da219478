// net::Listener and the frame helpers (src/common/socket.h) on real loopback sockets.
#include "src/common/socket.h"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include "tests/test_util/status_matchers.h"

namespace shoal::net {
namespace {

TEST_CASE("Listener hands each connection over and takes none after Stop", "[socket]") {
  std::atomic<int> taken{0};
  Listener listener;
  absl::StatusOr<int> port = listener.Start("127.0.0.1", "test-accept", "test", [&](int fd) {
    REQUIRE_OK(WriteFrame(fd, "hello"));
    ::close(fd);
    ++taken;
  });
  REQUIRE_OK(port);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<int> fd = Connect("127.0.0.1", *port, absl::Seconds(5));
    REQUIRE_OK(fd);
    absl::StatusOr<std::string> frame = ReadFrame(*fd, 64);
    REQUIRE_OK(frame);
    CHECK(*frame == "hello");
    ::close(*fd);
  }
  CHECK(taken == 3);
  listener.Stop();
  listener.Stop();  // idempotent
  CHECK_FALSE(Connect("127.0.0.1", *port, absl::Seconds(1)).ok());
  CHECK(taken == 3);
  // Not an address: a clear error naming what it was for.
  Listener other;
  absl::StatusOr<int> bad = other.Start("not-an-ip", "test-accept", "test", [](int fd) { ::close(fd); });
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("test: 'not-an-ip' is not an IPv4 address"));
}

TEST_CASE("ReadFrame refuses oversized frames and stops at its deadline", "[socket]") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  REQUIRE_OK(WriteFrame(pair[0], std::string(100, 'x')));
  absl::StatusOr<std::string> big = ReadFrame(pair[1], 10);
  CHECK(absl::IsInvalidArgument(big.status()));
  ::close(pair[0]);
  ::close(pair[1]);
  // A frame whose bytes never come: the deadline ends the read, however it trickles.
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
  const char partial[2] = {5, 0};
  REQUIRE(::write(pair[0], partial, sizeof(partial)) == 2);
  absl::StatusOr<std::string> late = ReadFrame(pair[1], 10, absl::Now() + absl::Milliseconds(100));
  CHECK(absl::IsDeadlineExceeded(late.status()));
  ::close(pair[0]);
  ::close(pair[1]);
}

}  // namespace
}  // namespace shoal::net

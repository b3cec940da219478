// HTTPS in GuardedHttpServer (a real handshake against a certificate made here), and the checks
// of the dashboard's certificate and key (dashboard_tls.h).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include "httplib.h"
#include "src/common/dashboard_tls.h"
#include "src/dashboard/guarded_server.h"
#include "tests/test_util/temp_dir.h"

namespace shoal::dashboard {
namespace {
namespace fs = std::filesystem;

// A self-signed certificate for 127.0.0.1 (its own CA) and its key, as PEM files in `dir`.
DashboardTlsFiles MakeCertificate(const std::string& dir, const std::string& name) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  REQUIRE(key != nullptr);
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* subject = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, subject);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  REQUIRE(san != nullptr);
  X509_add_ext(cert, san, -1);
  X509_EXTENSION_free(san);
  REQUIRE(X509_sign(cert, key, EVP_sha256()) > 0);
  DashboardTlsFiles files{.cert = (fs::path(dir) / (name + ".pem")).string(), .key = (fs::path(dir) / (name + ".key")).string()};
  FILE* out = std::fopen(files.cert.c_str(), "w");
  REQUIRE(PEM_write_X509(out, cert) == 1);
  std::fclose(out);
  out = std::fopen(files.key.c_str(), "w");
  REQUIRE(PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  std::fclose(out);
  X509_free(cert);
  EVP_PKEY_free(key);
  return files;
}

// A GuardedHttpServer with HTTPS on a free loopback port: GET /hello answers "hi", GET /big
// 4 MiB (more than the socket buffers hold, so writes wait for the client).
class HttpsServer {
 public:
  HttpsServer(const DashboardTlsFiles& files, ConnectionLimits limits) {
    absl::StatusOr<std::shared_ptr<SSL_CTX>> ctx = DashboardServerContext(files);
    REQUIRE(ctx.ok());
    server_ = std::make_unique<GuardedHttpServer>(limits, *ctx);
    server_->set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
      CurrentRequest()->ExpectNoBody();
      return httplib::Server::HandlerResponse::Unhandled;
    });
    server_->Get("/hello", [](const httplib::Request&, httplib::Response& res) { res.set_content("hi", "text/plain"); });
    server_->Get("/big", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(4 << 20, 'x'), "text/plain");
    });
    port_ = server_->bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_->listen_after_bind(); });
  }
  ~HttpsServer() {
    server_->stop();
    thread_.join();
    server_->Shutdown();
  }
  int port() const { return port_; }
  GuardedHttpServer& server() { return *server_; }

 private:
  std::unique_ptr<GuardedHttpServer> server_;
  std::thread thread_;
  int port_ = 0;
};

// A client that trusts `ca` and checks the server's name.
std::unique_ptr<httplib::SSLClient> Client(int port, const std::string& ca) {
  auto client = std::make_unique<httplib::SSLClient>("127.0.0.1", port);
  client->set_ca_cert_path(ca.c_str());
  client->enable_server_certificate_verification(true);
  client->set_connection_timeout(10, 0);
  client->set_read_timeout(10, 0);
  return client;
}

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  return fd;
}

// Everything the server sends on `fd` until it closes it; "<open>" when it is still open after
// `patience` (far longer than any deadline of these tests).
std::string ReadUntilClosed(int fd, int patience_ms = 30000) {
  std::string got;
  for (;;) {
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, patience_ms) <= 0) return got + "<open>";
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return got;
    got.append(buf, static_cast<size_t>(n));
  }
}

TEST_CASE("HTTPS: a client that trusts the certificate gets the reply, one that does not is refused") {
  test_util::TempDir dir;
  DashboardTlsFiles files = MakeCertificate(dir.path, "dashboard");
  DashboardTlsFiles other = MakeCertificate(dir.path, "other");
  HttpsServer server(files, ConnectionLimits{});

  auto client = Client(server.port(), files.cert);
  httplib::Result hello = client->Get("/hello");
  REQUIRE(hello);
  REQUIRE(hello->status == 200);
  REQUIRE(hello->body == "hi");
  httplib::Result big = client->Get("/big");  // same connection (keep-alive), writes that wait
  REQUIRE(big);
  REQUIRE(big->body.size() == size_t{4} << 20);

  httplib::Result refused = Client(server.port(), other.cert)->Get("/hello");
  REQUIRE(!refused);
  REQUIRE(refused.error() == httplib::Error::SSLServerVerification);
}

TEST_CASE("HTTPS: plain HTTP to the port gets no reply, and the server goes on serving TLS") {
  test_util::TempDir dir;
  DashboardTlsFiles files = MakeCertificate(dir.path, "dashboard");
  HttpsServer server(files, ConnectionLimits{});
  const int fd = Connect(server.port());
  const std::string request = "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  const std::string reply = ReadUntilClosed(fd);
  ::close(fd);
  REQUIRE(reply.find("<open>") == std::string::npos);
  REQUIRE(reply.find("HTTP/") == std::string::npos);
  REQUIRE(reply.find("hi") == std::string::npos);

  httplib::Result hello = Client(server.port(), files.cert)->Get("/hello");
  REQUIRE(hello);
  REQUIRE(hello->body == "hi");
}

TEST_CASE("HTTPS: a client that never finishes its handshake is dropped at the read timeout, others are served") {
  test_util::TempDir dir;
  DashboardTlsFiles files = MakeCertificate(dir.path, "dashboard");
  ConnectionLimits limits;
  limits.max_connections = 2;
  limits.read_timeout = absl::Milliseconds(500);
  HttpsServer server(files, limits);

  // One stalls before the handshake, one in its middle (a ClientHello record cut short).
  const int silent = Connect(server.port());
  const int partial = Connect(server.port());
  const char hello_start[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
  REQUIRE(::send(partial, hello_start, sizeof(hello_start), MSG_NOSIGNAL) == sizeof(hello_start));
  // Both slots are taken while they stall; once they are dropped, a TLS client is served.
  REQUIRE(ReadUntilClosed(silent).find("<open>") == std::string::npos);
  REQUIRE(ReadUntilClosed(partial).find("<open>") == std::string::npos);
  ::close(silent);
  ::close(partial);
  httplib::Result hello = Client(server.port(), files.cert)->Get("/hello");
  REQUIRE(hello);
  REQUIRE(hello->body == "hi");
}

TEST_CASE("HTTPS: a stalled handshake does not hold up other clients") {
  test_util::TempDir dir;
  DashboardTlsFiles files = MakeCertificate(dir.path, "dashboard");
  ConnectionLimits limits;
  limits.max_connections = 4;
  limits.read_timeout = absl::Seconds(30);  // the stalled clients stay for the whole test
  HttpsServer server(files, limits);
  const int first = Connect(server.port());
  const int second = Connect(server.port());
  for (int i = 0; i < 3; ++i) {
    httplib::Result hello = Client(server.port(), files.cert)->Get("/hello");
    REQUIRE(hello);
    REQUIRE(hello->body == "hi");
  }
  REQUIRE(server.server().active_connections() >= 2);  // they are still open (and waited on)
  ::close(first);
  ::close(second);
}

TEST_CASE("HTTPS: past the connection limit a client is closed without a plaintext reply") {
  test_util::TempDir dir;
  DashboardTlsFiles files = MakeCertificate(dir.path, "dashboard");
  ConnectionLimits limits;
  limits.max_connections = 1;
  limits.read_timeout = absl::Seconds(30);  // the first client keeps the only slot for the whole test
  HttpsServer server(files, limits);
  const int holder = Connect(server.port());
  const int refused = Connect(server.port());
  const std::string reply = ReadUntilClosed(refused);
  REQUIRE(reply.find("<open>") == std::string::npos);
  REQUIRE(reply.find("HTTP/") == std::string::npos);
  ::close(refused);
  ::close(holder);
  // The slot is free again once the holder has gone.
  std::string body;
  for (int i = 0; i < 200 && body.empty(); ++i) {
    if (httplib::Result hello = Client(server.port(), files.cert)->Get("/hello")) {
      body = hello->body;
    } else {
      absl::SleepFor(absl::Milliseconds(50));  // the server has not seen the close yet
    }
  }
  REQUIRE(body == "hi");
}

TEST_CASE("the dashboard's certificate and key are refused by flag name when unusable") {
  test_util::TempDir dir;
  DashboardTlsFiles files = MakeCertificate(dir.path, "dashboard");
  DashboardTlsFiles other = MakeCertificate(dir.path, "other");

  REQUIRE(DashboardServerContext({}).ok());
  REQUIRE(*DashboardServerContext({}) == nullptr);  // no files: plain HTTP
  REQUIRE(*DashboardServerContext(files) != nullptr);

  absl::Status only_cert = DashboardServerContext({.cert = files.cert, .key = ""}).status();
  REQUIRE(absl::IsInvalidArgument(only_cert));
  REQUIRE_THAT(std::string(only_cert.message()), Catch::Contains("--dashboard-tls-key"));
  absl::Status only_key = DashboardServerContext({.cert = "", .key = files.key}).status();
  REQUIRE_THAT(std::string(only_key.message()), Catch::Contains("--dashboard-tls-cert"));
  absl::Status missing = DashboardServerContext({.cert = dir.path + "/none.pem", .key = files.key}).status();
  REQUIRE(absl::IsInvalidArgument(missing));
  REQUIRE_THAT(std::string(missing.message()), Catch::Contains("--dashboard-tls-cert"));
  absl::Status wrong_key = DashboardServerContext({.cert = files.cert, .key = other.key}).status();
  REQUIRE(absl::IsInvalidArgument(wrong_key));
  REQUIRE_THAT(std::string(wrong_key.message()), Catch::Contains("--dashboard-tls-key"));
}

}  // namespace
}  // namespace shoal::dashboard

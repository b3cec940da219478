#include "src/common/tls.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "spdlog/spdlog.h"

namespace shoal {
namespace {

// How a source names the three files in its errors.
struct Names {
  const char* cert;
  const char* key;
  const char* ca;
};
constexpr Names kFlagNames{"--tls-cert", "--tls-key", "--tls-ca"};
constexpr Names kEnvNames{kTlsCertEnv, kTlsKeyEnv, kTlsCaEnv};

struct TlsState {
  TlsFiles files;
  absl::Status error;  // the environment named files that cannot be used: fail closed
  std::shared_ptr<grpc::ChannelCredentials> client;
  std::shared_ptr<grpc::ServerCredentials> server;
};

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(name, ": cannot read '", path, "'"));
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": '", path, "' holds no PEM data"));
  }
  return text.str();
}

absl::StatusOr<TlsState> Load(const TlsFiles& files, const Names& names) {
  TlsState state;
  if (!files.enabled()) {
    state.client = grpc::InsecureChannelCredentials();
    state.server = grpc::InsecureServerCredentials();
    return state;
  }
  std::vector<std::string> missing;
  if (files.cert.empty()) missing.push_back(names.cert);
  if (files.key.empty()) missing.push_back(names.key);
  if (files.ca.empty()) missing.push_back(names.ca);
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("TLS needs a certificate, its key and the cluster's CA; missing ",
                                                   absl::StrJoin(missing, ", ")));
  }
  auto cert = ReadPem(files.cert, names.cert);
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(files.key, names.key);
  if (!key.ok()) return key.status();
  auto ca = ReadPem(files.ca, names.ca);
  if (!ca.ok()) return ca.status();
  state.files = files;
  grpc::SslCredentialsOptions client;
  client.pem_root_certs = *ca;
  client.pem_private_key = *key;
  client.pem_cert_chain = *cert;
  state.client = grpc::SslCredentials(client);
  grpc::SslServerCredentialsOptions server(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  server.pem_root_certs = *ca;
  server.pem_key_cert_pairs.push_back({*key, *cert});
  state.server = grpc::SslServerCredentials(server);
  return state;
}

absl::Mutex mu;
TlsState* state ABSL_GUARDED_BY(mu) = nullptr;

const TlsState& State() {
  absl::MutexLock lock(&mu);
  if (state == nullptr) {
    auto loaded = Load(TlsFilesFromEnvironment(), kEnvNames);
    if (loaded.ok()) {
      state = new TlsState(*std::move(loaded));
    } else {
      spdlog::error("TLS from the environment cannot be used, so no connection will be made: {}",
                    std::string(loaded.status().message()));
      state = new TlsState();
      state->error = loaded.status();
      // Fail closed: TLS that trusts no server, and a server no client can complete.
      state->client = grpc::SslCredentials(grpc::SslCredentialsOptions{.pem_root_certs = "-"});
      state->server = grpc::SslServerCredentials(grpc::SslServerCredentialsOptions());
    }
  }
  return *state;  // never freed nor replaced after first use, but by ConfigureTls at start-up
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

}  // namespace

TlsFiles TlsFilesFromEnvironment() { return {Env(kTlsCertEnv), Env(kTlsKeyEnv), Env(kTlsCaEnv)}; }

absl::Status ConfigureTls(const TlsFiles& files) {
  auto loaded = Load(files, kFlagNames);
  if (!loaded.ok()) return loaded.status();
  absl::MutexLock lock(&mu);
  delete state;
  state = new TlsState(*std::move(loaded));
  return absl::OkStatus();
}

TlsFiles CurrentTlsFiles() { return State().files; }

std::shared_ptr<grpc::ChannelCredentials> ClientCredentials() { return State().client; }
std::shared_ptr<grpc::ServerCredentials> ServerCredentials() { return State().server; }

void AddTlsFlags(FlagSet& flags, TlsFiles* out) {
  flags.AddString("tls-cert", &out->cert,
                  "mutual TLS: this node's certificate, PEM (with --tls-key and --tls-ca; default $SHOAL_TLS_CERT)");
  flags.AddString("tls-key", &out->key, "mutual TLS: the certificate's private key, PEM (default $SHOAL_TLS_KEY)");
  flags.AddString("tls-ca", &out->ca,
                  "mutual TLS: the CA that signs every certificate of the cluster, PEM (default $SHOAL_TLS_CA)");
}

absl::Status ConfigureDaemonTls(const TlsFiles& flags) {
  if (flags.enabled()) return ConfigureTls(flags);
  TlsFiles env = TlsFilesFromEnvironment();
  auto loaded = Load(env, kEnvNames);
  if (!loaded.ok()) return loaded.status();
  return ConfigureTls(env);
}

}  // namespace shoal

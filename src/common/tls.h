// Optional mutual TLS for every gRPC connection of the cluster (issue 12): with TLS on, each
// server presents its certificate and requires a client certificate signed by the cluster's CA,
// and each client checks the server's certificate against the same CA and presents its own.
// The cluster token (auth.h) is still required on top.
//
// Where the files come from: daemons take --tls-cert, --tls-key and --tls-ca (AddTlsFlags);
// every other process (drivers, workers, the CLI, the Python module) reads $SHOAL_TLS_CERT,
// $SHOAL_TLS_KEY and $SHOAL_TLS_CA on first use. The raylet passes its files to its workers in
// those variables. All three or none: a partial set is refused, naming what is missing.
// Threading: ConfigureTls before any channel or server is made; the rest from any thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "src/common/flags.h"

namespace shoal {

inline constexpr char kTlsCertEnv[] = "SHOAL_TLS_CERT";
inline constexpr char kTlsKeyEnv[] = "SHOAL_TLS_KEY";
inline constexpr char kTlsCaEnv[] = "SHOAL_TLS_CA";

// PEM file paths; all empty: TLS off.
struct TlsFiles {
  std::string cert;  // this process's certificate (chain)
  std::string key;   // its private key
  std::string ca;    // the CA that signs every certificate of the cluster
  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

// The files named by $SHOAL_TLS_CERT, $SHOAL_TLS_KEY and $SHOAL_TLS_CA.
TlsFiles TlsFilesFromEnvironment();

// Reads the files and makes them this process's TLS settings, replacing what the environment
// said. InvalidArgument naming the flag or variable when only some are given or one cannot be
// read. With no files, TLS is off.
absl::Status ConfigureTls(const TlsFiles& files);

// The files in use (empty when TLS is off), e.g. to pass them on to workers.
TlsFiles CurrentTlsFiles();

// Credentials for MakeChannel and StartServer (rpc.h): TLS when configured (from the
// environment at first use if ConfigureTls was never called), insecure otherwise. If the
// environment names files that cannot be used, clients and servers fail closed: every call
// answers UNAVAILABLE and the reason is logged once.
std::shared_ptr<grpc::ChannelCredentials> ClientCredentials();
std::shared_ptr<grpc::ServerCredentials> ServerCredentials();

// --tls-cert, --tls-key and --tls-ca for a daemon; ConfigureDaemonTls applies them, falling back
// to the environment when none is given.
void AddTlsFlags(FlagSet& flags, TlsFiles* out);
absl::Status ConfigureDaemonTls(const TlsFiles& flags);

}  // namespace shoal

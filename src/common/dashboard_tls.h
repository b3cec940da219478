// HTTPS for the dashboard: its own certificate and key, apart from the cluster's mutual TLS
// (tls.h). The dashboard takes --dashboard-tls-cert and --dashboard-tls-key (FlagSet falls back
// to $SHOAL_DASHBOARD_TLS_CERT and $SHOAL_DASHBOARD_TLS_KEY); `shoal start --head` checks them
// before it starts anything and passes them on. Its clients check the dashboard's certificate
// against --dashboard-ca, else $SHOAL_DASHBOARD_TLS_CA, else the system's CAs.
// Threading: any.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "src/common/flags.h"

namespace shoal {

inline constexpr char kDashboardTlsCertEnv[] = "SHOAL_DASHBOARD_TLS_CERT";
inline constexpr char kDashboardTlsKeyEnv[] = "SHOAL_DASHBOARD_TLS_KEY";
inline constexpr char kDashboardTlsCaEnv[] = "SHOAL_DASHBOARD_TLS_CA";

// PEM file paths; both empty: plain HTTP.
struct DashboardTlsFiles {
  std::string cert;  // the dashboard's certificate (chain)
  std::string key;   // its private key
  bool enabled() const { return !cert.empty() || !key.empty(); }
};

// --dashboard-tls-cert and --dashboard-tls-key.
void AddDashboardTlsFlags(FlagSet& flags, DashboardTlsFiles* out);

// A server context for `files`: TLS 1.2 or newer, the certificate and its key. Null when HTTPS
// is off (no files). InvalidArgument naming the flag when only one file is given, a file cannot
// be read or the key does not match the certificate.
absl::StatusOr<std::shared_ptr<SSL_CTX>> DashboardServerContext(const DashboardTlsFiles& files);

}  // namespace shoal

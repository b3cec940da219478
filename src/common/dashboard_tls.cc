#include "src/common/dashboard_tls.h"

#include <openssl/err.h>

#include "absl/strings/str_cat.h"

namespace shoal {
namespace {

constexpr char kCertFlag[] = "--dashboard-tls-cert";
constexpr char kKeyFlag[] = "--dashboard-tls-key";

// The oldest error OpenSSL queued on this thread (the root cause), then clears the queue.
std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

}  // namespace

void AddDashboardTlsFlags(FlagSet& flags, DashboardTlsFiles* out) {
  flags.AddString("dashboard-tls-cert", &out->cert,
                  "serve the dashboard over HTTPS only, with this certificate (chain), PEM (with "
                  "--dashboard-tls-key; default $SHOAL_DASHBOARD_TLS_CERT)");
  flags.AddString("dashboard-tls-key", &out->key,
                  "the dashboard certificate's private key, PEM (default $SHOAL_DASHBOARD_TLS_KEY)");
}

absl::StatusOr<std::shared_ptr<SSL_CTX>> DashboardServerContext(const DashboardTlsFiles& files) {
  if (!files.enabled()) return std::shared_ptr<SSL_CTX>();
  if (files.cert.empty() || files.key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("HTTPS for the dashboard needs a certificate and its key; missing ",
                                                   files.cert.empty() ? kCertFlag : kKeyFlag, " ($",
                                                   files.cert.empty() ? kDashboardTlsCertEnv : kDashboardTlsKeyEnv, ")"));
  }
  ERR_clear_error();
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (ctx == nullptr) return absl::InternalError(absl::StrCat("cannot make a TLS context: ", OpenSslError()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), files.cert.c_str()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(kCertFlag, ": cannot use '", files.cert, "' as a PEM certificate: ", OpenSslError()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), files.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    // A key that does not fit the certificate fails here too (OpenSSL checks the pair on load).
    return absl::InvalidArgumentError(
        absl::StrCat(kKeyFlag, ": cannot use '", files.key, "' as the private key of ", files.cert, ": ", OpenSslError()));
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(kKeyFlag, ": '", files.key, "' is not the key of the certificate in ", files.cert, ": ", OpenSslError()));
  }
  return ctx;
}

}  // namespace shoal

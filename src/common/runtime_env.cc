#include "src/common/runtime_env.h"

#include <openssl/sha.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace shoal {
namespace {

bool IsEnvVarName(const std::string& name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool IsOneLine(absl::string_view s) {
  return s.find('\n') == absl::string_view::npos && s.find('\r') == absl::string_view::npos &&
         s.find('\0') == absl::string_view::npos;
}

// Deterministic bytes of `m` (map entries sorted), so that equal messages hash alike.
std::string DeterministicBytes(const google::protobuf::MessageLite& m) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

}  // namespace

std::string Sha256Hex(absl::string_view bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA256_DIGEST_LENGTH);
  for (unsigned char c : digest) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

bool IsEmptyRuntimeEnv(const rpc::RuntimeEnv& env) { return env.ByteSizeLong() == 0; }

std::string RuntimeEnvKey(const rpc::RuntimeEnv& env) {
  if (IsEmptyRuntimeEnv(env)) return "";
  return Sha256Hex(DeterministicBytes(env));
}

std::string PipEnvKey(const rpc::RuntimeEnv& env) {
  if (env.pip_packages().empty() && env.py_module_wheels().empty()) return "";
  rpc::RuntimeEnv pip;
  *pip.mutable_pip_packages() = env.pip_packages();
  *pip.mutable_pip_install_options() = env.pip_install_options();
  *pip.mutable_py_module_wheels() = env.py_module_wheels();
  pip.set_installer(env.installer().empty() ? "pip" : env.installer());
  pip.set_interpreter(env.interpreter());
  return Sha256Hex(DeterministicBytes(pip));
}

absl::StatusOr<std::string> PackageNameOfUri(absl::string_view uri, absl::string_view extension) {
  if (!absl::StartsWith(uri, kPackageScheme)) {
    return absl::InvalidArgumentError(absl::StrCat("package URI '", uri, "' must start with ", kPackageScheme));
  }
  absl::string_view name = uri.substr(kPackageScheme.size());
  const bool chars_ok = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
  if (name.size() < 5 || name.size() > 128 || !chars_ok || name[0] == '.' || !absl::EndsWith(name, extension)) {
    return absl::InvalidArgumentError(absl::StrCat("package URI '", uri, "': the name must be 5 to 128 characters of ",
                                                   "letters, digits, '_', '-' and '.', not start with '.', and end ",
                                                   "with ", extension));
  }
  return std::string(name);
}

absl::Status ValidateRuntimeEnv(const rpc::RuntimeEnv& env) {
  for (const auto& [name, value] : env.env_vars()) {
    if (!IsEnvVarName(name)) {
      return absl::InvalidArgumentError(absl::StrCat("runtime_env env_vars: '", name,
                                                     "' is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"));
    }
    if (value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("runtime_env env_vars: the value of ", name, " holds a NUL"));
    }
  }
  if (!env.working_dir().empty()) {
    if (auto name = PackageNameOfUri(env.working_dir(), ".zip"); !name.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("runtime_env working_dir: ", name.status().message()));
    }
  }
  for (const std::string& uri : env.py_modules()) {
    if (auto name = PackageNameOfUri(uri, ".zip"); !name.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("runtime_env py_modules: ", name.status().message()));
    }
  }
  for (const std::string& uri : env.py_module_wheels()) {
    if (auto name = PackageNameOfUri(uri, ".whl"); !name.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("runtime_env py_modules: ", name.status().message()));
    }
  }
  for (const std::string& line : env.pip_packages()) {
    if (line.empty() || !IsOneLine(line)) {
      return absl::InvalidArgumentError(absl::StrCat("runtime_env pip: '", line, "' is not one requirement line"));
    }
  }
  for (const std::string& option : env.pip_install_options()) {
    if (!IsOneLine(option)) {
      return absl::InvalidArgumentError(absl::StrCat("runtime_env pip_install_options: '", option,
                                                     "' spans several lines"));
    }
  }
  if (!env.installer().empty() && env.installer() != "pip" && env.installer() != "uv") {
    return absl::InvalidArgumentError(absl::StrCat("runtime_env installer '", env.installer(),
                                                   "' is not one of pip, uv"));
  }
  if (!PipEnvKey(env).empty() && env.interpreter().empty()) {
    return absl::InvalidArgumentError("runtime_env pip/uv needs a Python worker: no interpreter given");
  }
  for (const std::string& path : env.python_path()) {
    if (path.find('\0') != std::string::npos || path.find(':') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("runtime_env python_path: '", path, "' holds ':' or a NUL"));
    }
  }
  return absl::OkStatus();
}

}  // namespace shoal

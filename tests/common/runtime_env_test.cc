#include "src/common/runtime_env.h"
#include "src/common/zip_listing.h"

#include <catch2/catch.hpp>

#include "tests/test_util/status_matchers.h"
#include "tests/test_util/zip_builder.h"

namespace shoal {
namespace {

using test_util::BuildZip;

rpc::RuntimeEnv Env() {
  rpc::RuntimeEnv env;
  (*env.mutable_env_vars())["A"] = "1";
  (*env.mutable_env_vars())["B"] = "2";
  env.set_working_dir("gcs://_shoal_pkg_0123456789abcdef.zip");
  env.add_python_path("/opt/code");
  return env;
}

TEST_CASE("Sha256Hex answers the standard digest") {
  CHECK(Sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("RuntimeEnvKey names equal environments alike and different ones apart") {
  CHECK(RuntimeEnvKey(rpc::RuntimeEnv()).empty());
  CHECK(IsEmptyRuntimeEnv(rpc::RuntimeEnv()));
  const std::string key = RuntimeEnvKey(Env());
  CHECK(key.size() == 64);
  // Map order does not matter.
  rpc::RuntimeEnv reordered = Env();
  reordered.mutable_env_vars()->clear();
  (*reordered.mutable_env_vars())["B"] = "2";
  (*reordered.mutable_env_vars())["A"] = "1";
  CHECK(RuntimeEnvKey(reordered) == key);
  rpc::RuntimeEnv other = Env();
  (*other.mutable_env_vars())["A"] = "3";
  CHECK(RuntimeEnvKey(other) != key);
}

TEST_CASE("PipEnvKey depends only on what the virtualenv holds") {
  rpc::RuntimeEnv a = Env();
  CHECK(PipEnvKey(a).empty());
  a.add_pip_packages("requests==2.31");
  a.set_interpreter("/usr/bin/python3");
  rpc::RuntimeEnv b = a;
  (*b.mutable_env_vars())["C"] = "other";
  b.set_working_dir("");
  CHECK(!PipEnvKey(a).empty());
  CHECK(PipEnvKey(a) == PipEnvKey(b));
  b.set_installer("uv");
  CHECK(PipEnvKey(a) != PipEnvKey(b));
  a.set_installer("pip");  // "" means pip
  rpc::RuntimeEnv c = a;
  c.set_installer("");
  CHECK(PipEnvKey(a) == PipEnvKey(c));
}

TEST_CASE("ValidateRuntimeEnv refuses what a raylet could not set up") {
  CHECK_OK(ValidateRuntimeEnv(Env()));
  rpc::RuntimeEnv env = Env();
  (*env.mutable_env_vars())["1BAD"] = "x";
  CHECK_CODE(ValidateRuntimeEnv(env), kInvalidArgument);
  env = Env();
  env.set_working_dir("s3://bucket/code.zip");
  CHECK_CODE(ValidateRuntimeEnv(env), kInvalidArgument);
  env = Env();
  env.add_py_modules("gcs://../../etc.zip");
  CHECK_CODE(ValidateRuntimeEnv(env), kInvalidArgument);
  env = Env();
  env.add_pip_packages("requests\n--index-url http://evil");
  env.set_interpreter("/usr/bin/python3");
  CHECK_CODE(ValidateRuntimeEnv(env), kInvalidArgument);
  env = Env();
  env.add_pip_packages("requests");
  CHECK_CODE(ValidateRuntimeEnv(env), kInvalidArgument);  // no interpreter
  env.set_interpreter("/usr/bin/python3");
  CHECK_OK(ValidateRuntimeEnv(env));
  env.set_installer("conda");
  CHECK_CODE(ValidateRuntimeEnv(env), kInvalidArgument);
}

TEST_CASE("PackageNameOfUri checks the scheme, the characters and the extension") {
  auto name = PackageNameOfUri("gcs://_shoal_pkg_abc.zip", ".zip");
  REQUIRE_OK(name);
  CHECK(*name == "_shoal_pkg_abc.zip");
  CHECK_CODE(PackageNameOfUri("gcs://_shoal_pkg_abc.zip", ".whl"), kInvalidArgument);
  CHECK_CODE(PackageNameOfUri("http://x/_shoal_pkg_abc.zip", ".zip"), kInvalidArgument);
  CHECK_CODE(PackageNameOfUri("gcs://a/b.zip", ".zip"), kInvalidArgument);
  CHECK_CODE(PackageNameOfUri("gcs://.hidden.zip", ".zip"), kInvalidArgument);
  CHECK_CODE(PackageNameOfUri("gcs://" + std::string(200, 'a') + ".zip", ".zip"), kInvalidArgument);
}

TEST_CASE("ListZipEntries reads names, sizes and symlinks from the central directory") {
  const std::string zip = BuildZip({{.name = "pkg/", .data = ""},
                                    {.name = "pkg/mod.py", .data = "X = 1\n"},
                                    {.name = "link", .data = "/etc/passwd", .mode = 0120777}});
  auto entries = ListZipEntries(zip);
  REQUIRE_OK(entries);
  REQUIRE(entries->size() == 3);
  CHECK((*entries)[0].is_directory);
  CHECK((*entries)[1].name == "pkg/mod.py");
  CHECK((*entries)[1].uncompressed_size == 6);
  CHECK_FALSE((*entries)[1].is_symlink);
  CHECK((*entries)[2].is_symlink);
  CHECK_CODE(ListZipEntries("not a zip at all, just text"), kInvalidArgument);
  // A count smaller than the entries that follow would hide the last ones from the check.
  std::string hiding = zip;
  const size_t eocd = hiding.size() - 22;
  hiding[eocd + 8] = 2;   // entries on this disk
  hiding[eocd + 10] = 2;  // entries in all
  CHECK_CODE(ListZipEntries(hiding), kInvalidArgument);
  // Symlinks made on other hosts unzip knows (BeOS here) are symlinks too.
  std::string beos = BuildZip({{.name = "link", .data = "/etc/passwd", .mode = 0120777}});
  const size_t central = beos.find(std::string("\x50\x4b\x01\x02", 4));
  beos[central + 5] = 16;  // "version made by": host 16
  auto beos_entries = ListZipEntries(beos);
  REQUIRE_OK(beos_entries);
  CHECK((*beos_entries)[0].is_symlink);
  CHECK_CODE(ListZipEntries(zip.substr(0, zip.size() / 2)), kInvalidArgument);
}

TEST_CASE("CheckZipEntries refuses archives that write outside their directory") {
  auto check = [](const std::string& name, uint32_t mode = 0100644) {
    auto entries = ListZipEntries(BuildZip({{.name = name, .data = "x", .mode = mode}}));
    REQUIRE_OK(entries);
    return CheckZipEntries(*entries, 1 << 20);
  };
  CHECK_OK(check("a/b/c.txt"));
  CHECK_CODE(check("../escape.txt"), kInvalidArgument);
  CHECK_CODE(check("a/../../escape.txt"), kInvalidArgument);
  CHECK_CODE(check("/etc/cron.d/x"), kInvalidArgument);
  CHECK_CODE(check("a\\..\\x"), kInvalidArgument);
  CHECK_CODE(check("link", 0120777), kInvalidArgument);
  auto big = ListZipEntries(BuildZip({{.name = "big", .data = std::string(2000, 'x')}}));
  REQUIRE_OK(big);
  CHECK_CODE(CheckZipEntries(*big, 1000), kInvalidArgument);
}

}  // namespace
}  // namespace shoal

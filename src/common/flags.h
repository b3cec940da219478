// Command-line flags with environment fallback, for Shoal's binaries.
//
// A FlagSet binds names to variables owned by the caller. Parse() accepts `--name value`,
// `--name=value`, and `--flag` / `--no-flag` for booleans; a flag not given on the command line
// takes SHOAL_<NAME> from the environment (dashes become underscores, upper case) when set.
// Everything after a bare `--` is kept as positional arguments.
// Threading: one thread, during start-up.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace shoal {

class FlagSet {
 public:
  explicit FlagSet(std::string program) : program_(std::move(program)) {}
  FlagSet(const FlagSet&) = delete;
  FlagSet& operator=(const FlagSet&) = delete;

  void AddString(const std::string& name, std::string* out, const std::string& help);
  void AddInt(const std::string& name, int64_t* out, const std::string& help);
  void AddDouble(const std::string& name, double* out, const std::string& help);
  void AddBool(const std::string& name, bool* out, const std::string& help);
  // A flag that may be given several times: each value is appended to `out`.
  void AddStringList(const std::string& name, std::vector<std::string>* out, const std::string& help);

  // Parses argv[first..argc). InvalidArgument names the bad flag or value; `--help` answers
  // Cancelled so the caller can print Usage() and exit 0.
  absl::Status Parse(int argc, char** argv, int first = 1);
  // True when `name` was given on the command line or through the environment.
  bool WasSet(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }
  std::string Usage() const;

 private:
  struct Flag {
    std::string name;
    std::string help;
    bool is_bool = false;
    std::string default_text;
    std::function<absl::Status(const std::string&)> set;
    bool was_set = false;
  };
  Flag* Find(const std::string& name);
  void Add(Flag flag);

  std::string program_;
  std::vector<Flag> flags_;
  std::vector<std::string> positional_;
};

}  // namespace shoal

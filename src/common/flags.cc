#include "src/common/flags.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace shoal {

void FlagSet::Add(Flag flag) { flags_.push_back(std::move(flag)); }

void FlagSet::AddString(const std::string& name, std::string* out, const std::string& help) {
  Add({name, help, false, *out, [out](const std::string& v) {
         *out = v;
         return absl::OkStatus();
       }});
}

void FlagSet::AddInt(const std::string& name, int64_t* out, const std::string& help) {
  Add({name, help, false, std::to_string(*out), [out, name](const std::string& v) {
         if (!absl::SimpleAtoi(v, out)) {
           return absl::InvalidArgumentError(absl::StrCat("--", name, " needs an integer, got '", v, "'"));
         }
         return absl::OkStatus();
       }});
}

void FlagSet::AddDouble(const std::string& name, double* out, const std::string& help) {
  Add({name, help, false, absl::StrCat(*out), [out, name](const std::string& v) {
         if (!absl::SimpleAtod(v, out)) {
           return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a number, got '", v, "'"));
         }
         return absl::OkStatus();
       }});
}

void FlagSet::AddBool(const std::string& name, bool* out, const std::string& help) {
  Add({name, help, true, *out ? "true" : "false", [out, name](const std::string& v) {
         if (!absl::SimpleAtob(v, out)) {
           return absl::InvalidArgumentError(absl::StrCat("--", name, " needs true or false, got '", v, "'"));
         }
         return absl::OkStatus();
       }});
}

void FlagSet::AddStringList(const std::string& name, std::vector<std::string>* out, const std::string& help) {
  Add({name, help + " (may be given several times)", false, "", [out](const std::string& v) {
         out->push_back(v);
         return absl::OkStatus();
       }});
}

FlagSet::Flag* FlagSet::Find(const std::string& name) {
  for (auto& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

absl::Status FlagSet::Parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i) positional_.push_back(argv[i]);
      break;
    }
    if (arg == "--help" || arg == "-h") return absl::CancelledError("help");
    if (arg.size() < 3 || arg.rfind("--", 0) != 0) {
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    Flag* flag = Find(name);
    if (flag == nullptr && !has_value && name.rfind("no-", 0) == 0) {
      Flag* negated = Find(name.substr(3));
      if (negated != nullptr && negated->is_bool) {
        flag = negated;
        value = "false";
        has_value = true;
      }
    }
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see ", program_, " --help)"));
    }
    if (!has_value) {
      if (flag->is_bool) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
    }
    if (auto s = flag->set(value); !s.ok()) return s;
    flag->was_set = true;
  }
  for (auto& f : flags_) {
    if (f.was_set) continue;
    std::string env = "SHOAL_" + absl::AsciiStrToUpper(absl::StrReplaceAll(f.name, {{"-", "_"}}));
    if (const char* v = std::getenv(env.c_str()); v != nullptr && *v != '\0') {
      if (auto s = f.set(v); !s.ok()) return absl::InvalidArgumentError(absl::StrCat(env, ": ", s.message()));
      f.was_set = true;
    }
  }
  return absl::OkStatus();
}

bool FlagSet::WasSet(const std::string& name) const {
  for (const auto& f : flags_) {
    if (f.name == name) return f.was_set;
  }
  return false;
}

std::string FlagSet::Usage() const {
  std::string out = absl::StrCat("usage: ", program_, " [flags]\n");
  for (const auto& f : flags_) {
    absl::StrAppend(&out, "  --", f.name, f.is_bool ? "" : " VALUE", "\n      ", f.help);
    if (!f.default_text.empty()) absl::StrAppend(&out, " (default: ", f.default_text, ")");
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace shoal

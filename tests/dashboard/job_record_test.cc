#include "src/dashboard/job_record.h"

#include <catch2/catch.hpp>

namespace shoal::dashboard {
namespace {

TEST_CASE("a full submit request parses") {
  auto spec = ParseSubmitRequest(R"({
    "entrypoint": "python run.py", "submission_id": "my-job_1",
    "runtime_env": {"working_dir": "gcs://_ray_pkg_abc.zip", "env_vars": {"A": "1"}},
    "metadata": {"owner": "me"}, "entrypoint_num_cpus": 1, "entrypoint_num_gpus": 0.5,
    "entrypoint_memory": 1024, "entrypoint_resources": {"TPU": 2}, "some_future_field": 1})");
  REQUIRE(spec.ok());
  REQUIRE(spec->entrypoint == "python run.py");
  REQUIRE(spec->submission_id == "my-job_1");
  REQUIRE(spec->working_dir == "gcs://_ray_pkg_abc.zip");
  REQUIRE(spec->env_vars.at("A") == "1");
  REQUIRE(spec->metadata.at("owner") == "me");
  REQUIRE(spec->ResourceShape() == std::map<std::string, double>{{"CPU", 1}, {"GPU", 0.5}, {"TPU", 2}, {"memory", 1024}});
}

TEST_CASE("an entrypoint asking for nothing has an empty shape, as Ray's default 0 CPUs") {
  auto spec = ParseSubmitRequest(R"({"entrypoint": "echo hi", "entrypoint_num_cpus": null})");
  REQUIRE(spec.ok());
  REQUIRE(spec->submission_id.empty());
  REQUIRE(spec->ResourceShape().empty());
}

TEST_CASE("bad submit requests are InvalidArgument naming the field") {
  struct Case { const char* body; const char* mentions; };
  for (const Case& c : std::vector<Case>{
           {"{not json", "JSON"},
           {"[1, 2]", "object"},
           {"{}", "entrypoint"},
           {R"({"entrypoint": ""})", "entrypoint"},
           {R"({"entrypoint": 5})", "entrypoint"},
           {R"({"entrypoint": "x", "submission_id": "../etc"})", "submission_id"},
           {R"({"entrypoint": "x", "runtime_env": []})", "runtime_env"},
           {R"({"entrypoint": "x", "runtime_env": {"env_vars": {"A": 1}}})", "env_vars.A"},
           {R"({"entrypoint": "x", "entrypoint_num_gpus": -1})", "entrypoint_num_gpus"},
           {R"({"entrypoint": "x", "entrypoint_num_cpus": "2"})", "entrypoint_num_cpus"},
           {R"({"entrypoint": "x", "entrypoint_memory": 1.5})", "entrypoint_memory"},
           {R"({"entrypoint": "x", "entrypoint_resources": {"GPU": 1}})", "entrypoint_num_gpus"},
           {R"({"entrypoint": "x", "metadata": {"k": []}})", "metadata.k"}}) {
    INFO(c.body);
    auto spec = ParseSubmitRequest(c.body);
    REQUIRE(absl::IsInvalidArgument(spec.status()));
    REQUIRE_THAT(std::string(spec.status().message()), Catch::Contains(c.mentions));
  }
}

TEST_CASE("the job state machine allows only forward moves") {
  REQUIRE(CanTransition(JobStatus::kPending, JobStatus::kRunning));
  REQUIRE(CanTransition(JobStatus::kPending, JobStatus::kStopped));
  REQUIRE(CanTransition(JobStatus::kPending, JobStatus::kFailed));
  REQUIRE_FALSE(CanTransition(JobStatus::kPending, JobStatus::kSucceeded));
  for (JobStatus end : {JobStatus::kSucceeded, JobStatus::kFailed, JobStatus::kStopped}) {
    REQUIRE(CanTransition(JobStatus::kRunning, end));
    REQUIRE(IsTerminal(end));
    for (JobStatus to : {JobStatus::kPending, JobStatus::kRunning, JobStatus::kSucceeded, JobStatus::kFailed,
                         JobStatus::kStopped}) {
      REQUIRE_FALSE(CanTransition(end, to));
    }
  }
  JobRecord record;
  record.spec.submission_id = "j";
  REQUIRE(record.Transition(JobStatus::kRunning, "running", 10).ok());
  REQUIRE(record.end_time_ms == 0);
  REQUIRE(record.Transition(JobStatus::kFailed, "exit 3", 20).ok());
  REQUIRE(record.end_time_ms == 20);
  REQUIRE(absl::IsFailedPrecondition(record.Transition(JobStatus::kRunning, "again", 30)));
  REQUIRE(record.status == JobStatus::kFailed);
  REQUIRE(record.message == "exit 3");
}

TEST_CASE("a record round-trips through its stored form and answers Ray's JobDetails") {
  JobRecord record;
  record.spec = *ParseSubmitRequest(R"({"entrypoint": "echo", "submission_id": "abc",
                                        "runtime_env": {"env_vars": {"X": "y"}}, "entrypoint_num_gpus": 2})");
  record.start_time_ms = 5;
  REQUIRE(record.Transition(JobStatus::kRunning, "r", 6).ok());
  REQUIRE(record.Transition(JobStatus::kSucceeded, "ok", 7).ok());
  record.driver_exit_code = 0;
  auto back = JobRecord::Deserialize(record.Serialize());
  REQUIRE(back.ok());
  REQUIRE(back->spec.submission_id == "abc");
  REQUIRE(back->spec.env_vars.at("X") == "y");
  REQUIRE(back->spec.num_gpus == 2);
  REQUIRE(back->status == JobStatus::kSucceeded);
  REQUIRE(back->end_time_ms == 7);
  REQUIRE(back->driver_exit_code == 0);
  nlohmann::json api = record.ToApiJson();
  REQUIRE(api["type"] == "SUBMISSION");
  REQUIRE(api["submission_id"] == "abc");
  REQUIRE(api["status"] == "SUCCEEDED");
  REQUIRE(api["start_time"] == 5);
  REQUIRE(api["driver_exit_code"] == 0);
  REQUIRE(absl::IsInvalidArgument(JobRecord::Deserialize("{}").status()));
  REQUIRE(absl::IsInvalidArgument(JobRecord::Deserialize("garbage").status()));
}

TEST_CASE("submission ids") {
  REQUIRE(IsValidSubmissionId("raysubmit_abc-1.2"));
  REQUIRE_FALSE(IsValidSubmissionId(""));
  REQUIRE_FALSE(IsValidSubmissionId(".."));
  REQUIRE_FALSE(IsValidSubmissionId("a/b"));
  REQUIRE_FALSE(IsValidSubmissionId(std::string(129, 'a')));
  std::string id = NewSubmissionId();
  REQUIRE(IsValidSubmissionId(id));
  REQUIRE(id != NewSubmissionId());
}

// Found by fuzz/job_record_fuzzer (stack overflow): nlohmann::json copies and dumps recursively,
// and a 200 KB body of brackets overflowed the dashboard's stack.
TEST_CASE("deeply nested JSON is refused, not recursed into") {
  auto nested = [](int depth) {
    return R"({"entrypoint": "x", "runtime_env": {"a": )" + std::string(depth, '[') + std::string(depth, ']') + "}}";
  };
  auto deep = ParseSubmitRequest(nested(100000));
  REQUIRE(absl::IsInvalidArgument(deep.status()));
  REQUIRE_THAT(std::string(deep.status().message()), Catch::Contains("deep"));
  REQUIRE(absl::IsInvalidArgument(JobRecord::Deserialize(nested(100000)).status()));
  // The body is 1 deep, runtime_env 2: 98 arrays inside make 100, the limit. At the limit the
  // body parses, and only then is "a" refused (not a runtime_env key); past it, depth is.
  auto at_limit = ParseSubmitRequest(nested(98));
  REQUIRE(absl::IsInvalidArgument(at_limit.status()));
  REQUIRE_THAT(std::string(at_limit.status().message()), Catch::Contains("'a' is not supported"));
  auto past = ParseSubmitRequest(nested(99));
  REQUIRE(absl::IsInvalidArgument(past.status()));
  REQUIRE_THAT(std::string(past.status().message()), Catch::Contains("deep"));
  // Brackets inside strings are text, not nesting.
  auto text = ParseSubmitRequest(R"({"entrypoint": ")" + std::string(1000, '[') + R"(\"[{"})");
  REQUIRE(text.ok());
}

// Found by fuzz/runtime_env_fuzzer and fuzz/job_record_fuzzer: these reached the job's environ
// and /bin/sh -c as C strings, so a name with '=' set another variable and a NUL cut the text.
TEST_CASE("env var names and values and the entrypoint are what the child process receives") {
  for (const char* body : {R"({"entrypoint": "x", "runtime_env": {"env_vars": {"O=P": "1"}}})",
                           R"({"entrypoint": "x", "runtime_env": {"env_vars": {"": "1"}}})",
                           R"({"entrypoint": "x", "runtime_env": {"env_vars": {"A\u0000B": "1"}}})",
                           R"({"entrypoint": "x", "runtime_env": {"env_vars": {"A": "1\u0000rm -rf"}}})",
                           R"({"entrypoint": "echo hi\u0000; rm -rf /"})"}) {
    INFO(body);
    REQUIRE(absl::IsInvalidArgument(ParseSubmitRequest(body).status()));
  }
  auto ok = ParseSubmitRequest(R"({"entrypoint": "x", "runtime_env": {"env_vars": {"A_1": "x=y", "B": ""}}})");
  REQUIRE(ok.ok());
  REQUIRE(ok->env_vars == std::map<std::string, std::string>{{"A_1", "x=y"}, {"B", ""}});
}

TEST_CASE("runtime_env: null is empty, working_dir and env_vars are taken, the rest kept") {
  auto env = ParseRuntimeEnv(nlohmann::json());
  REQUIRE(env.ok());
  REQUIRE(env->raw == nlohmann::json::object());
  env = ParseRuntimeEnv(nlohmann::json::parse(R"({"working_dir": "gcs://p.zip", "pip": ["x"], "env_vars": {"A": "1"}})"));
  REQUIRE(env.ok());
  REQUIRE(env->working_dir == "gcs://p.zip");
  REQUIRE(env->env_vars.at("A") == "1");
  REQUIRE(env->raw["pip"][0] == "x");
  REQUIRE(absl::IsInvalidArgument(ParseRuntimeEnv(nlohmann::json::parse(R"({"working_dir": 1})")).status()));
  REQUIRE(absl::IsInvalidArgument(ParseRuntimeEnv(nlohmann::json::array()).status()));
}

TEST_CASE("package URIs name one file in the package directory") {
  REQUIRE(PackageNameFromUri("gcs://_ray_pkg_abc.zip") == "_ray_pkg_abc.zip");
  for (const char* bad : {"gcs://.zip", "gcs://../x.zip", "gcs://a/b.zip", "gcs://x.tar", "s3://x.zip", "x.zip",
                          "gcs://", "GCS://x.zip"}) {
    INFO(bad);
    REQUIRE_FALSE(PackageNameFromUri(bad).has_value());
  }
  // The names PUT /api/packages/gcs/<name> accepts are the ones a gcs:// URI resolves to.
  REQUIRE(IsValidPackageName("a.zip"));
  REQUIRE_FALSE(IsValidPackageName(".zip"));
  REQUIRE_FALSE(IsValidPackageName("a.zip.tmp.1"));
  REQUIRE_FALSE(IsValidPackageName(std::string(125, 'a') + ".zip"));
}

}  // namespace
}  // namespace shoal::dashboard

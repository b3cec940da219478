// Fuzzes the job-record JSON (src/dashboard/job_record.h): ParseSubmitRequest, which reads the
// body of POST /api/jobs/, and JobRecord::Deserialize, which reads the records the dashboard
// stored in the GCS (a restarted dashboard loads them).
//
// Input: one JSON text (the seeds are real submit bodies and stored records), given to both.
// Invariants: a refusal is InvalidArgument; an accepted request is within its documented limits
// (non-empty entrypoint that /bin/sh -c receives unchanged, a valid or empty submission id,
// finite amounts >= 0, no CPU/GPU/memory among the custom resources, environment variables
// that the child's environ holds unchanged); a record made from it, and any record that
// deserializes, survive Serialize -> Deserialize unchanged; the API form parses back to the
// same request.
#include <cmath>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_check.h"
#include "src/dashboard/job_record.h"

namespace db = shoal::dashboard;

namespace {

bool SameSpec(const db::JobSpec& a, const db::JobSpec& b) {
  return a.submission_id == b.submission_id && a.entrypoint == b.entrypoint && a.runtime_env == b.runtime_env &&
         a.working_dir == b.working_dir && a.env_vars == b.env_vars && a.metadata == b.metadata &&
         a.num_cpus == b.num_cpus && a.num_gpus == b.num_gpus && a.memory == b.memory && a.resources == b.resources;
}

bool SameRecord(const db::JobRecord& a, const db::JobRecord& b) {
  return SameSpec(a.spec, b.spec) && a.status == b.status && a.message == b.message && a.error_type == b.error_type &&
         a.start_time_ms == b.start_time_ms && a.end_time_ms == b.end_time_ms &&
         a.driver_exit_code == b.driver_exit_code && a.driver_pid == b.driver_pid;
}

bool FiniteAmount(double v) { return std::isfinite(v) && v >= 0; }

void CheckSpec(const db::JobSpec& spec) {
  FUZZ_CHECK(!spec.entrypoint.empty() && spec.entrypoint.size() <= 64 * 1024);
  FUZZ_CHECK(spec.entrypoint.find('\0') == std::string::npos);
  FUZZ_CHECK(spec.submission_id.empty() || db::IsValidSubmissionId(spec.submission_id));
  FUZZ_CHECK(FiniteAmount(spec.num_cpus) && FiniteAmount(spec.num_gpus) && spec.memory >= 0);
  for (const auto& [name, amount] : spec.resources) {
    FUZZ_CHECK(name != "CPU" && name != "GPU" && name != "memory" && FiniteAmount(amount));
  }
  for (const auto& [name, value] : spec.env_vars) {
    FUZZ_CHECK(!name.empty() && name.find_first_of(std::string("=\0", 2)) == std::string::npos);
    FUZZ_CHECK(value.find('\0') == std::string::npos);
  }
  for (const auto& [name, amount] : spec.ResourceShape()) FUZZ_CHECK(amount > 0);
}

void CheckRoundTrip(const db::JobRecord& record) {
  absl::StatusOr<db::JobRecord> back = db::JobRecord::Deserialize(record.Serialize());
  FUZZ_CHECK(back.ok());
  FUZZ_CHECK(SameRecord(record, *back));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<db::JobSpec> spec = db::ParseSubmitRequest(text);
  if (!spec.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(spec.status()));
  } else {
    CheckSpec(*spec);
    db::JobRecord record;
    record.spec = *spec;
    if (record.spec.submission_id.empty()) record.spec.submission_id = "fuzz_job";
    CheckRoundTrip(record);
    absl::StatusOr<db::JobSpec> again = db::ParseSubmitRequest(record.ToApiJson().dump());
    FUZZ_CHECK(again.ok() && SameSpec(record.spec, *again));
  }

  absl::StatusOr<db::JobRecord> stored = db::JobRecord::Deserialize(text);
  if (!stored.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(stored.status()));
  } else {
    CheckSpec(stored->spec);
    FUZZ_CHECK(db::IsValidSubmissionId(stored->spec.submission_id));
    CheckRoundTrip(*stored);
  }
  return 0;
}

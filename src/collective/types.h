// What a collective operation works on: a typed buffer on the host or on one CUDA device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "src/collective/status.h"

namespace shoal::collective {

enum class DataType { kInt8, kUint8, kInt32, kInt64, kFloat16, kBFloat16, kFloat32, kFloat64 };
enum class ReduceOp { kSum, kProduct, kMin, kMax };

size_t SizeOf(DataType type);
// Names as numpy and torch spell them ("float32", "int64", "float16", "bfloat16", ...).
std::optional<DataType> ParseDataType(const std::string& name);
const char* DataTypeName(DataType type);
std::optional<ReduceOp> ParseReduceOp(const std::string& name);  // "SUM", "PRODUCT", "MIN", "MAX"
const char* ReduceOpName(ReduceOp op);

// `count` elements of `type` at `data`. device < 0: host memory; otherwise the CUDA device
// (as numbered in this process). stream: the CUDA stream the producer wrote it on (0: default).
struct Buffer {
  void* data = nullptr;
  size_t count = 0;
  DataType type = DataType::kFloat32;
  int device = -1;
  uintptr_t stream = 0;

  size_t bytes() const { return count * SizeOf(type); }
  bool on_host() const { return device < 0; }
};

// acc[i] = op(acc[i], in[i]) for `count` host elements of `type`.
void ReduceInto(void* acc, const void* in, size_t count, DataType type, ReduceOp op);

}  // namespace shoal::collective

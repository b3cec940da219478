#include "src/collective/types.h"

#include <algorithm>
#include <cstring>

namespace shoal::collective {

std::string Status::ToString() const {
  if (ok()) return "OK";
  return message_;
}

size_t SizeOf(DataType type) {
  switch (type) {
    case DataType::kInt8:
    case DataType::kUint8: return 1;
    case DataType::kFloat16:
    case DataType::kBFloat16: return 2;
    case DataType::kInt32:
    case DataType::kFloat32: return 4;
    case DataType::kInt64:
    case DataType::kFloat64: return 8;
  }
  return 1;
}

namespace {

struct TypeName {
  const char* name;
  DataType type;
};
constexpr TypeName kTypeNames[] = {
    {"int8", DataType::kInt8},       {"uint8", DataType::kUint8},       {"int32", DataType::kInt32},
    {"int64", DataType::kInt64},     {"float16", DataType::kFloat16},   {"bfloat16", DataType::kBFloat16},
    {"float32", DataType::kFloat32}, {"float64", DataType::kFloat64},
};

struct OpName {
  const char* name;
  ReduceOp op;
};
constexpr OpName kOpNames[] = {
    {"SUM", ReduceOp::kSum}, {"PRODUCT", ReduceOp::kProduct}, {"MIN", ReduceOp::kMin}, {"MAX", ReduceOp::kMax}};

// IEEE half and bfloat16 <-> float, exact for every value a half or bfloat16 holds; float to
// half rounds to nearest even.
float HalfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      exp = 127 - 15 + 1;
      while ((man & 0x400) == 0) {
        man <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xff) - 127 + 15;
  uint32_t man = x & 0x7fffff;
  if (((x >> 23) & 0xff) == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (man ? 0x200u : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    man |= 0x800000;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = man >> shift;
    uint32_t rest = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rest > mid || (rest == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (man >> 13);
  uint32_t rest = man & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) ++half;  // may carry into the exponent: right
  return static_cast<uint16_t>(half);
}

float BFloat16ToFloat(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t FloatToBFloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);  // NaN stays NaN
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

template <typename T>
T Apply(T a, T b, ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return static_cast<T>(a + b);
    case ReduceOp::kProduct: return static_cast<T>(a * b);
    case ReduceOp::kMin: return std::min(a, b);
    case ReduceOp::kMax: return std::max(a, b);
  }
  return a;
}

template <typename T>
void ReduceTyped(void* acc, const void* in, size_t count, ReduceOp op) {
  T* a = static_cast<T*>(acc);
  const T* b = static_cast<const T*>(in);
  for (size_t i = 0; i < count; ++i) a[i] = Apply(a[i], b[i], op);
}

template <float (*ToFloat)(uint16_t), uint16_t (*FromFloat)(float)>
void ReduceHalfLike(void* acc, const void* in, size_t count, ReduceOp op) {
  uint16_t* a = static_cast<uint16_t*>(acc);
  const uint16_t* b = static_cast<const uint16_t*>(in);
  for (size_t i = 0; i < count; ++i) a[i] = FromFloat(Apply(ToFloat(a[i]), ToFloat(b[i]), op));
}

}  // namespace

std::optional<DataType> ParseDataType(const std::string& name) {
  for (const auto& t : kTypeNames) {
    if (name == t.name) return t.type;
  }
  return std::nullopt;
}

const char* DataTypeName(DataType type) {
  for (const auto& t : kTypeNames) {
    if (t.type == type) return t.name;
  }
  return "?";
}

std::optional<ReduceOp> ParseReduceOp(const std::string& name) {
  for (const auto& o : kOpNames) {
    if (name == o.name) return o.op;
  }
  return std::nullopt;
}

const char* ReduceOpName(ReduceOp op) {
  for (const auto& o : kOpNames) {
    if (o.op == op) return o.name;
  }
  return "?";
}

void ReduceInto(void* acc, const void* in, size_t count, DataType type, ReduceOp op) {
  switch (type) {
    case DataType::kInt8: return ReduceTyped<int8_t>(acc, in, count, op);
    case DataType::kUint8: return ReduceTyped<uint8_t>(acc, in, count, op);
    case DataType::kInt32: return ReduceTyped<int32_t>(acc, in, count, op);
    case DataType::kInt64: return ReduceTyped<int64_t>(acc, in, count, op);
    case DataType::kFloat32: return ReduceTyped<float>(acc, in, count, op);
    case DataType::kFloat64: return ReduceTyped<double>(acc, in, count, op);
    case DataType::kFloat16: return ReduceHalfLike<HalfToFloat, FloatToHalf>(acc, in, count, op);
    case DataType::kBFloat16: return ReduceHalfLike<BFloat16ToFloat, FloatToBFloat16>(acc, in, count, op);
  }
}

}  // namespace shoal::collective

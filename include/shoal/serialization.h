// How task arguments, results and Put values travel: msgpack (msgpack-cxx, header-only).
//
// Any type msgpack-cxx can pack works as an argument, a result or a Put value: numbers, bool,
// std::string, std::vector, std::map, std::tuple, std::optional, ... and your own structs once
// they say how with MSGPACK_DEFINE(field, ...). Raw bytes travel as std::string (msgpack str)
// or std::vector<char> / std::vector<uint8_t> (msgpack bin); both are copied once on each side.
// Threading: pure functions; any thread.
#pragma once

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif

#include <msgpack.hpp>

#include <string>
#include <string_view>
#include <typeinfo>

#include "shoal/errors.h"

namespace shoal::internal {

// The demangled name of a C++ type as `typeid(...).name()` spells it ("std::vector<int, ...>").
std::string Demangle(const char* mangled);
template <typename T>
std::string TypeName() {
  return Demangle(typeid(T).name());
}

// msgpack writes through any type with write(const char*, size_t); this one appends to a string.
struct StringSink {
  std::string* out;
  void write(const char* data, size_t size) { out->append(data, size); }
};

template <typename T>
std::string Pack(const T& value) {
  std::string out;
  StringSink sink{&out};
  msgpack::pack(sink, value);
  return out;
}

// What a function returning void answers: msgpack nil.
inline std::string PackNil() { return std::string(1, '\xc0'); }

// Reads a T from `bytes`. Throws shoal::Error naming what was read, as `describe()` answers it
// ("argument 2 of Add"), when the bytes do not hold a T.
template <typename T, typename Describe>
T Unpack(std::string_view bytes, const Describe& describe) {
  try {
    // Strings and binaries reference `bytes` instead of being copied into the zone: the
    // conversion to T below is their only copy.
    auto by_reference = [](msgpack::type::object_type, std::size_t, void*) { return true; };
    msgpack::object_handle handle = msgpack::unpack(bytes.data(), bytes.size(), by_reference);
    return handle.get().as<T>();
  } catch (const std::exception& e) {
    throw Error("cannot deserialize " + describe() + " as " + TypeName<T>() + ": " + e.what());
  }
}

}  // namespace shoal::internal

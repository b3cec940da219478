// Hello world: one remote function, one task, one Get.
//
//   build/bin/shoal-example-hello                  # starts (and stops) a local cluster
//   SHOAL_ADDRESS=127.0.0.1:6379 build/bin/shoal-example-hello   # or joins a running one
#include <iostream>
#include <string>

#include "shoal/api.h"

std::string Greet(const std::string& name) { return "Hello, " + name + ", from a Shoal task!"; }
SHOAL_REMOTE(Greet);

int main() {
  shoal::Init();  // first: when a raylet runs this binary as a worker, Init serves tasks instead
  shoal::ObjectRef<std::string> greeting = shoal::Task(Greet).Remote("world");
  std::cout << *shoal::Get(greeting) << std::endl;
  shoal::Shutdown();
  return 0;
}

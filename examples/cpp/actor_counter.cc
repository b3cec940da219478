// Actors: a counter that lives in a worker process of its own and keeps its state between
// calls. Calls from this driver run in order; tasks given a handle call the same actor; a
// method that throws leaves the actor usable; a named actor is found by name.
//
//   build/bin/shoal-example-actor-counter                   # local cluster of its own
//   build/bin/shoal-example-actor-counter --address 127.0.0.1:6379   # or SHOAL_ADDRESS=...
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "shoal/api.h"

class Counter {
 public:
  // The factory: runs on the actor's worker when the actor is created (and again on restart).
  static Counter* Create(int start) { return new Counter(start); }
  int Add(int n) {
    if (n < 0) throw std::invalid_argument("a counter only counts up, got " + std::to_string(n));
    return value_ += n;
  }
  int Get() const { return value_; }

 private:
  explicit Counter(int start) : value_(start) {}
  int value_;
};
SHOAL_REMOTE(Counter::Create, &Counter::Add, &Counter::Get);

// A task that calls the actor through a handle it was given.
int AddMany(shoal::ActorHandle<Counter> counter, int times) {
  std::vector<shoal::ObjectRef<int>> refs;
  for (int i = 0; i < times; ++i) refs.push_back(counter.Task(&Counter::Add).Remote(1));
  shoal::Get(refs);
  return times;
}
SHOAL_REMOTE(AddMany);

int main(int argc, char** argv) {
  shoal::InitOptions options;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--address") == 0) options.address = argv[i + 1];
  }
  shoal::Init(options);

  // A named actor that may be restarted once if its worker dies.
  shoal::ActorHandle<Counter> counter =
      shoal::Actor(Counter::Create).SetName("example-counter").SetMaxRestarts(1).Remote(100);

  // Ten calls from here run in order: 101, 102, ..., 110.
  std::vector<shoal::ObjectRef<int>> refs;
  for (int i = 0; i < 10; ++i) refs.push_back(counter.Task(&Counter::Add).Remote(1));
  std::cout << "in order:";
  for (const auto& v : shoal::Get(refs)) std::cout << " " << *v;
  std::cout << std::endl;

  // Four tasks, each adding 25 through its own copy of the handle.
  std::vector<shoal::ObjectRef<int>> tasks;
  for (int i = 0; i < 4; ++i) tasks.push_back(shoal::Task(AddMany).Remote(counter, 25));
  shoal::Get(tasks);
  std::cout << "after 4 tasks x 25 calls: " << *shoal::Get(counter.Task(&Counter::Get).Remote()) << std::endl;

  // A method that throws: TaskError at Get; the actor keeps its state.
  try {
    shoal::Get(counter.Task(&Counter::Add).Remote(-1));
  } catch (const shoal::TaskError& e) {
    std::cout << "Add(-1) failed: " << e.type_name() << ": " << e.message() << std::endl;
  }

  // Found by name (from any driver of this cluster).
  shoal::ActorHandle<Counter> same = shoal::GetActor<Counter>("example-counter");
  std::cout << "by name: " << *shoal::Get(same.Task(&Counter::Get).Remote()) << std::endl;

  counter.Kill();
  try {
    shoal::Get(same.Task(&Counter::Get).Remote());
  } catch (const shoal::ActorDiedError& e) {
    std::cout << "after Kill: ActorDiedError: " << e.what() << std::endl;
  }
  shoal::Shutdown();
  return 0;
}

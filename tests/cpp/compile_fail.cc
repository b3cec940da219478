// Misuse of the task API that must not compile. CMake builds this file once per case with
// -DSHOAL_COMPILE_FAIL_CASE=N and expects the static_assert message named in
// tests/cpp/CMakeLists.txt; case 0 is the control that must compile.
#include <string>

#include "shoal/api.h"

int Add(int a, int b) { return a + b; }
int Deref(int* p) { return *p; }
int TakesRef(shoal::ObjectRef<int> r) { return 0; }
SHOAL_REMOTE(Add);

class Counter {
 public:
  static Counter* Create(int start) { return new Counter{start}; }
  int Add(int n) { return value += n; }
  int Get() const { return value; }
  void Steps(shoal::Yield<int>& out, int n) {
    for (int i = 0; i < n; ++i) out(i);
  }
  int BadGen(shoal::Yield<int>& out) { return 0; }
  int value;
};
class Other {
 public:
  static Other* Make() { return new Other; }
  int Ping() { return 1; }
};
SHOAL_REMOTE(Counter::Create, &Counter::Add, &Counter::Get, &Counter::Steps, Other::Make, &Other::Ping);
#if SHOAL_COMPILE_FAIL_CASE == 15
SHOAL_REMOTE(&Counter::BadGen);
#endif

void Use() {
  shoal::ObjectRef<int> i;
  shoal::ObjectRef<std::string> s;
  shoal::ActorHandle<Counter> c;
#if SHOAL_COMPILE_FAIL_CASE == 0
  shoal::Task(Add).Remote(1, 2);
  shoal::Task(Add).Remote(i, 2L);
  c = shoal::Actor(Counter::Create).SetMaxRestarts(1).Remote(i);
  shoal::ObjectRef<int> n = c.Task(&Counter::Add).Remote(5);
  n = c.Task(&Counter::Add).Remote(n);
  n = c.Task(&Counter::Get).Remote();
  shoal::ObjectRefGenerator<int> g = c.Task(&Counter::Steps).Remote(3);
  shoal::ActorHandle<Counter> same = shoal::GetActor<Counter>("x");
  same.Kill();
#elif SHOAL_COMPILE_FAIL_CASE == 1
  shoal::Task(Add).Remote(1);
#elif SHOAL_COMPILE_FAIL_CASE == 2
  shoal::Task(Add).Remote(1, std::string("two"));
#elif SHOAL_COMPILE_FAIL_CASE == 3
  shoal::Task(Add).Remote(s, 2);
#elif SHOAL_COMPILE_FAIL_CASE == 4
  shoal::Task(Deref).Remote(nullptr);
#elif SHOAL_COMPILE_FAIL_CASE == 5
  shoal::Task(TakesRef).Remote(i);
#elif SHOAL_COMPILE_FAIL_CASE == 6
  c.Task(&Counter::Add).Remote();
#elif SHOAL_COMPILE_FAIL_CASE == 7
  c.Task(&Counter::Add).Remote(std::string("five"));
#elif SHOAL_COMPILE_FAIL_CASE == 8
  c.Task(&Counter::Add).Remote(s);
#elif SHOAL_COMPILE_FAIL_CASE == 9
  c.Task(&Other::Ping).Remote();
#elif SHOAL_COMPILE_FAIL_CASE == 10
  shoal::Task(Counter::Create).Remote(1);
#elif SHOAL_COMPILE_FAIL_CASE == 11
  shoal::Actor(Add);
#elif SHOAL_COMPILE_FAIL_CASE == 12
  shoal::Actor(Counter::Create).Remote(std::string("zero"));
#elif SHOAL_COMPILE_FAIL_CASE == 13
  shoal::Actor(Counter::Create).Remote();
#elif SHOAL_COMPILE_FAIL_CASE == 14
  c.Task(&Counter::Steps).Remote();
#endif
}

// Misuse of the task API that must not compile. CMake builds this file once per case with
// -DSHOAL_COMPILE_FAIL_CASE=N and expects the static_assert message named in
// tests/cpp/CMakeLists.txt; case 0 is the control that must compile.
#include <string>

#include "shoal/api.h"

int Add(int a, int b) { return a + b; }
int Deref(int* p) { return *p; }
int TakesRef(shoal::ObjectRef<int> r) { return 0; }
SHOAL_REMOTE(Add);

void Use() {
  shoal::ObjectRef<int> i;
  shoal::ObjectRef<std::string> s;
#if SHOAL_COMPILE_FAIL_CASE == 0
  shoal::Task(Add).Remote(1, 2);
  shoal::Task(Add).Remote(i, 2L);
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
#endif
}

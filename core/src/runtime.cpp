#include "wavllm/core/runtime.h"

#include <ATen/Parallel.h>
#include <omp.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "wavllm/core/cpu_allocator.h"
#include "wavllm/core/error.h"

namespace wavllm {

int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

int resolve_threads(int n) {
  const int cores = available_cores();
  return n <= 0 ? cores : std::min(n, cores);
}

void set_threads(int n) {
  install_cpu_allocator();
  at::set_num_threads(resolve_threads(n));
}

ThreadScope::ThreadScope(int n) : previous_(at::get_num_threads()) {  // also LibTorch's per-thread first setup
  install_cpu_allocator();
  omp_set_num_threads(resolve_threads(n));
}

ThreadScope::~ThreadScope() { omp_set_num_threads(previous_); }

at::Device parse_device(const std::string& name) {
  at::Device d = at::kCPU;
  try {
    d = at::Device(name);
  } catch (const std::exception&) {
    throw ArgumentError("unknown device '" + name + "' (expected cpu, cuda or cuda:N)");
  }
  if (d.is_cuda() && !at::hasCUDA())
    throw ArgumentError("device '" + name + "': this LibTorch was built without CUDA or no GPU is visible");
  if (!d.is_cpu() && !d.is_cuda()) throw ArgumentError("device '" + name + "' is not supported (cpu or cuda)");
  return d;
}

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "f32" || name == "fp32" || name == "float") return at::kFloat;
  if (name == "float16" || name == "f16" || name == "fp16" || name == "half") return at::kHalf;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  throw ArgumentError("unknown dtype '" + name + "' (expected float32, float16 or bfloat16)");
}

std::string dtype_label(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    default: return c10::toString(t);
  }
}

}  // namespace wavllm

namespace wavllm {

namespace {

uint64_t read_u64_file(const std::string& path) {
  std::ifstream in(path);
  std::string v;
  if (!(in >> v) || v == "max") return 0;
  try {
    return std::stoull(v);
  } catch (const std::exception&) {
    return 0;
  }
}

// The folders of this process's memory cgroup, v2 and v1 (from /proc/self/cgroup), then the
// mount roots (a container's own cgroup is usually mounted there).
std::vector<std::string> cgroup_dirs() {
  std::vector<std::string> dirs;
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controllers.empty()) dirs.push_back("/sys/fs/cgroup" + path);
    else if (("," + controllers + ",").find(",memory,") != std::string::npos) dirs.push_back("/sys/fs/cgroup/memory" + path);
  }
  dirs.push_back("/sys/fs/cgroup");
  dirs.push_back("/sys/fs/cgroup/memory");
  return dirs;
}

// a - b, or 0 when b is larger.
uint64_t minus(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

uint64_t cgroup_room(uint64_t reusable) {
  uint64_t room = 0;
  for (const std::string& d : cgroup_dirs()) {
    for (const auto& [limit_file, usage_file] : {std::pair<const char*, const char*>{"/memory.max", "/memory.current"},
                                                {"/memory.limit_in_bytes", "/memory.usage_in_bytes"}}) {
      const uint64_t limit = read_u64_file(d + limit_file);
      // v1 reports "no limit" as a huge page-rounded number.
      if (limit == 0 || limit >= (uint64_t(1) << 62)) continue;
      const uint64_t used = minus(read_u64_file(d + usage_file), reusable);
      const uint64_t r = limit > used ? limit - used : 1;
      room = room ? std::min(room, r) : r;
    }
  }
  return room;
}

uint64_t address_space_room(uint64_t reusable) {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 0;
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0;
  statm >> pages;
  const uint64_t mapped = minus(pages * uint64_t(sysconf(_SC_PAGESIZE)), reusable);
  return rl.rlim_cur > mapped ? rl.rlim_cur - mapped : 1;
}

}  // namespace

uint64_t available_memory_bytes() {
  // Blocks the CPU allocator keeps for reuse are the process's to use again: counted as free
  // memory, and not as used by the cgroup or as mapped address space.
  const uint64_t reusable = cpu_allocator_stats().cached_bytes;
  uint64_t avail = 0;
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  uint64_t kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") avail = kb * 1024 + reusable;
  for (const uint64_t room : {cgroup_room(reusable), address_space_room(reusable)})
    if (room) avail = avail ? std::min(avail, room) : room;
  return avail;
}

void check_memory_budget(uint64_t needed_bytes, uint64_t available_bytes, const std::string& what) {
  if (available_bytes == 0 || needed_bytes <= available_bytes) return;
  auto gib = [](uint64_t b) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824.0);
    return std::string(buf);
  };
  throw ResourceError(what + " needs about " + gib(needed_bytes) + " of memory but only " + gib(available_bytes) +
              " is available; use a smaller --dtype (bfloat16 halves float32) or a machine with more memory");
}

}  // namespace wavllm

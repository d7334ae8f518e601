#include "wavllm/core/runtime.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <thread>

#include "wavllm/core/error.h"

namespace wavllm {

int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

void set_threads(int n) {
  if (n <= 0) n = available_cores();
  at::set_num_threads(n);
}

at::Device parse_device(const std::string& name) {
  at::Device d = at::kCPU;
  try {
    d = at::Device(name);
  } catch (const std::exception&) {
    throw Error("unknown device '" + name + "' (expected cpu, cuda or cuda:N)");
  }
  if (d.is_cuda() && !at::hasCUDA())
    throw Error("device '" + name + "': this LibTorch was built without CUDA or no GPU is visible");
  if (!d.is_cpu() && !d.is_cuda()) throw Error("device '" + name + "' is not supported (cpu or cuda)");
  return d;
}

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "f32" || name == "fp32" || name == "float") return at::kFloat;
  if (name == "float16" || name == "f16" || name == "fp16" || name == "half") return at::kHalf;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  throw Error("unknown dtype '" + name + "' (expected float32, float16 or bfloat16)");
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

uint64_t read_u64_file(const char* path) {
  std::ifstream in(path);
  std::string v;
  if (!(in >> v) || v == "max") return 0;
  try {
    return std::stoull(v);
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

uint64_t available_memory_bytes() {
  uint64_t avail = 0;
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  uint64_t kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") avail = kb * 1024;
  const uint64_t limit = read_u64_file("/sys/fs/cgroup/memory.max");
  if (limit > 0) {
    const uint64_t used = read_u64_file("/sys/fs/cgroup/memory.current");
    const uint64_t room = limit > used ? limit - used : 0;
    avail = avail ? std::min(avail, room) : room;
  }
  return avail;
}

void check_memory_budget(uint64_t needed_bytes, uint64_t available_bytes, const std::string& what) {
  if (available_bytes == 0 || needed_bytes <= available_bytes) return;
  auto gib = [](uint64_t b) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / 1073741824.0);
    return std::string(buf);
  };
  throw Error(what + " needs about " + gib(needed_bytes) + " of memory but only " + gib(available_bytes) +
              " is available; use a smaller --dtype (bfloat16 halves float32) or a machine with more memory");
}

}  // namespace wavllm

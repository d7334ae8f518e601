#include "wavllm/core/runtime.h"

#include <ATen/Parallel.h>
#include <sched.h>

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

#pragma once
// Process-wide settings shared by the CLI, the binding and the benchmarks.
#include <ATen/ATen.h>

#include <string>

namespace wavllm {

// The thread count a request for n threads gets, the one rule for the CLI, Python and config:
// n <= 0 means one per available core, and more threads than cores are capped at the core count
// (on a compute-bound engine they only add contention: 4096 threads made a 3-s clip take minutes).
int resolve_threads(int n);
// Intra-op threads for LibTorch, resolve_threads(n) of them, process-wide (an explicit choice of
// programs such as the benchmarks; models use ThreadScope instead).
void set_threads(int n);

// For its lifetime, the calling thread runs LibTorch's intra-op work on resolve_threads(n)
// threads; the thread's previous count comes back at the end. OpenMP keeps the count per
// thread, so other threads (another model's calls, the caller's own work) keep theirs.
// (BLAS libraries with their own pool, OpenBLAS's pthread build among them, size it themselves.)
class ThreadScope {
 public:
  explicit ThreadScope(int n);
  ~ThreadScope();
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int previous_;
};
int available_cores();

// "cpu", "cuda", "cuda:1"; an Error names the value when unknown or when this LibTorch has no CUDA.
at::Device parse_device(const std::string& name);
// "float32", "float16", "bfloat16" (also "f32", "fp16", "bf16"); otherwise an Error.
at::ScalarType parse_dtype(const std::string& name);
std::string dtype_label(at::ScalarType t);

// Disables autograd for the calling thread's lifetime of the guard (all inference).
using InferenceGuard = c10::InferenceMode;

}  // namespace wavllm

namespace wavllm {

// Memory the process may still take, in bytes; 0 if unknown: MemAvailable, bounded by the
// memory limit of the process's cgroup (v2 memory.max or v1 memory.limit_in_bytes, minus what
// the cgroup uses) and by RLIMIT_AS (minus the address space already mapped), plus the blocks
// the CPU allocator keeps for reuse (cpu_allocator.h).
uint64_t available_memory_bytes();
// Refuses a load that cannot fit, before any allocation: the Error gives both numbers.
void check_memory_budget(uint64_t needed_bytes, uint64_t available_bytes, const std::string& what);

}  // namespace wavllm

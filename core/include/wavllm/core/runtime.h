#pragma once
// Process-wide settings shared by the CLI, the binding and the benchmarks.
#include <ATen/ATen.h>

#include <string>

namespace wavllm {

// Intra-op threads for LibTorch; n <= 0 means one per available core (LibTorch starts with one).
void set_threads(int n);
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

// Memory the process may still take (MemAvailable, bounded by a cgroup limit when one is set), in bytes; 0 if unknown.
uint64_t available_memory_bytes();
// Refuses a load that cannot fit, before any allocation: the Error gives both numbers.
void check_memory_budget(uint64_t needed_bytes, uint64_t available_bytes, const std::string& what);

}  // namespace wavllm

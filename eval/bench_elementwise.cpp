// The kernels room's LayerNorm (kernels/elementwise.h) beside LibTorch's, side by side
// in one run, on the encoders' shapes (Whisper-large-v2 and WavLM-base over one 30-s part),
// float32 and bfloat16: milliseconds per call (best of --repeat) and GB/s moved (read + write).
//
//   bench_elementwise [--threads N] [--repeat R]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdio>
#include <string>

#include "bench_util.h"
#include "wavllm/kernels/elementwise.h"

namespace {

using namespace wavllm;

template <class T>
T* bits(at::Tensor& t) {
  return reinterpret_cast<T*>(t.data_ptr());
}

void row(const char* what, const at::Tensor& x, double torch_s, double ours_s) {
  const double gb = 2.0 * double(x.numel() * x.element_size()) / 1e9;
  std::printf("%-34s %-9s %9.2f %9.2f %7.2fx %8.1f\n", what, x.scalar_type() == at::kFloat ? "float32" : "bfloat16",
              torch_s * 1e3, ours_s * 1e3, torch_s / ours_s, gb / ours_s);
}

int run(int argc, char** argv) {
  int threads = 2, repeat = 20;
  bench::parse_options(argc, argv, [&](const std::string& a, const auto& value) {
    if (a == "--threads") threads = std::stoi(value());
    else if (a == "--repeat") repeat = std::stoi(value());
    else return false;
    return true;
  });
  if (threads < 1 || repeat < 1) throw Error("--threads >= 1, --repeat >= 1");
  at::set_num_threads(threads);
  std::printf("threads %d; ms per call, best of %d\n%-34s %-9s %9s %9s %8s %8s\n", threads, repeat, "op [shape]", "dtype",
              "LibTorch", "kernels", "ratio", "GB/s");
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    const bool f32 = dtype == at::kFloat;
    for (const int64_t n : {1280, 768}) {
      const at::Tensor x = (at::randn({1500, n}) * 2 + 3).to(dtype), g = at::randn({n}).to(dtype), b = at::randn({n}).to(dtype);
      at::Tensor y = at::empty_like(x), xc = x, gc = g, bc = b;
      const double torch_s = bench::best_seconds(repeat, [&] { at::layer_norm(x, {n}, g, b, 1e-5); });
      const double ours_s = bench::best_seconds(repeat, [&] {
        if (f32) kernels::layer_norm_f32(bits<float>(xc), 1500, n, bits<float>(gc), bits<float>(bc), 1e-5f, bits<float>(y));
        else kernels::layer_norm_bf16(bits<uint16_t>(xc), 1500, n, bits<uint16_t>(gc), bits<uint16_t>(bc), 1e-5f, bits<uint16_t>(y));
      });
      row(("layer_norm [1500, " + std::to_string(n) + "]").c_str(), x, torch_s, ours_s);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return bench::guarded_main("bench_elementwise", run, argc, argv); }

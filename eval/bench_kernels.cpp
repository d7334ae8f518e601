// The kernels room's matrix x vector products (decoding: one token) against the machine's
// streaming read, measured in the same run with the same threads: GB/s of weights read per
// product and its share of the streaming read, per weight format and instruction-set path.
// Torch-free. The matrices are LLaMA-2-7B's projection shapes; enough copies are cycled that
// the weights never sit in the caches (as in decoding, where every layer's are read once).
//
//   bench_kernels [--threads N] [--repeat R] [--format f32|bf16|q8_0|q4_0|all] [--megabytes M] [--tokens T]
//
// --tokens T multiplies T activation rows per product (a batch of decoding sequences): the
// weights are still read once, and GFLOP/s shows when the product turns compute-bound.
#include <omp.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "wavllm/kernels/bf16.h"
#include "wavllm/kernels/f32.h"
#include "wavllm/kernels/isa.h"
#include "wavllm/kernels/q4_0.h"
#include "wavllm/kernels/q8_0.h"

namespace {

using namespace wavllm;
using namespace wavllm::kernels;

struct Options {
  int threads = 0;
  int repeat = 5;
  std::string format = "all";
  double megabytes = 1024;  // weights cycled per timed pass: well beyond any cache
  int tokens = 1;
};

Options parse(int argc, char** argv) {
  Options o;
  bench::parse_options(argc, argv, [&](const std::string& a, const auto& value) {
    if (a == "--threads") o.threads = std::stoi(value());
    else if (a == "--repeat") o.repeat = std::stoi(value());
    else if (a == "--format") o.format = value();
    else if (a == "--megabytes") o.megabytes = std::stod(value());
    else if (a == "--tokens") o.tokens = std::stoi(value());
    else return false;
    return true;
  });
  if (o.threads < 0 || o.repeat < 1 || o.megabytes < 64 || o.tokens < 1 || o.tokens > 64)
    throw Error("--threads >= 0, --repeat >= 1, --megabytes >= 64, --tokens 1 to 64");
  if (o.format != "all" && o.format != "f32" && o.format != "bf16" && o.format != "q8_0" && o.format != "q4_0")
    throw Error("--format is f32, bf16, q8_0, q4_0 or all");
  return o;
}

// A sum over `bytes` of floats split over the threads: the rate no memory-bound kernel beats.
double stream_read_gbps(double bytes, int repeat) {
  std::vector<float> buffer(size_t(bytes / sizeof(float)), 1.0f);
  volatile float sink = 0;
  const double s = bench::best_seconds(repeat, [&] {
    float total = 0;
#pragma omp parallel for simd reduction(+ : total) schedule(static)
    for (int64_t i = 0; i < int64_t(buffer.size()); ++i) total += buffer[size_t(i)];
    sink = total;
  });
  (void)sink;
  return double(buffer.size() * sizeof(float)) / s / 1e9;
}

// bfloat16 bits of each value, truncated (the benchmark needs the format, not rounding).
std::vector<uint16_t> bf16_bits(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &v[i], 4);
    out[i] = uint16_t(u >> 16);
  }
  return out;
}

std::vector<float> random_values(size_t n, uint32_t seed, float scale) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

// One format's copies of a [rows, cols] matrix and the product of copy i with x.
struct Stored {
  std::vector<std::vector<uint8_t>> data;   // per copy: values (float32 or bf16 bits, int8 or packed nibbles)
  std::vector<std::vector<uint8_t>> scales;  // per copy (none for bf16)
  uint64_t bytes_per_copy = 0;
};

Stored store(const std::string& format, int64_t rows, int64_t cols, int copies) {
  const std::vector<float> w = random_values(size_t(rows * cols), 1, 0.02f);
  Stored s;
  for (int c = 0; c < copies; ++c) {
    std::vector<uint8_t> data, scales;
    if (format == "f32") {
      data.resize(w.size() * 4);
      std::memcpy(data.data(), w.data(), data.size());
    } else if (format == "bf16") {
      const std::vector<uint16_t> bits = bf16_bits(w);
      data.resize(bits.size() * 2);
      std::memcpy(data.data(), bits.data(), data.size());
    } else if (format == "q8_0") {
      data.resize(size_t(rows * cols));
      scales.resize(size_t(rows * cols / kQ8Block) * 4);
      quantize_q8_0(w.data(), rows * cols, reinterpret_cast<int8_t*>(data.data()), reinterpret_cast<float*>(scales.data()));
    } else {
      data.resize(size_t(rows * cols / 2));
      scales.resize(size_t(rows * cols / kQ4Block) * 2);
      quantize_q4_0(w.data(), rows * cols, data.data(), reinterpret_cast<uint16_t*>(scales.data()));
    }
    s.bytes_per_copy = data.size() + scales.size();
    s.data.push_back(std::move(data));
    s.scales.push_back(std::move(scales));
  }
  return s;
}

void product(const std::string& format, const Stored& s, int copy, int64_t rows, int64_t cols, const float* x,
             const uint16_t* x_bf16, int64_t tokens, float* y, Isa isa) {
  const auto& d = s.data[size_t(copy)];
  const auto& sc = s.scales[size_t(copy)];
  if (format == "f32")
    matmul_f32(reinterpret_cast<const float*>(d.data()), rows, cols, x, tokens, y, isa);
  else if (format == "bf16")
    matmul_bf16(reinterpret_cast<const uint16_t*>(d.data()), rows, cols, x_bf16, tokens, y, isa);
  else if (format == "q8_0")
    matmul_q8_0({reinterpret_cast<const int8_t*>(d.data()), reinterpret_cast<const float*>(sc.data()), rows, cols}, x, tokens, y, isa);
  else
    matmul_q4_0({d.data(), reinterpret_cast<const uint16_t*>(sc.data()), rows, cols}, x, tokens, y, isa);
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.threads > 0) omp_set_num_threads(o.threads);
  const int threads = omp_get_max_threads();
  const double stream = stream_read_gbps(o.megabytes * 1e6, o.repeat);
  std::printf("matrix x vector, %d token(s), %d threads, best of %d; streaming read %.1f GB/s\n", o.tokens, threads,
              o.repeat, stream);
  std::printf("%-6s %-7s %-13s %9s %9s %8s %8s\n", "format", "path", "shape", "us/prod", "GB/s", "stream%", "GFLOP/s");
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
  for (const std::string format : {"f32", "bf16", "q8_0", "q4_0"}) {
    if (o.format != "all" && o.format != format) continue;
    for (const auto& [rows, cols] : shapes) {
      const double per_copy = format == "f32" ? 4.0 : format == "bf16" ? 2.0 : format == "q8_0" ? 1.125 : 0.5625;
      const int copies = std::max(2, int(o.megabytes * 1e6 / (per_copy * double(rows * cols))));
      const Stored s = store(format, rows, cols, copies);
      const std::vector<float> x = random_values(size_t(cols * o.tokens), 2, 1.0f);
      const std::vector<uint16_t> x_bf16 = bf16_bits(x);
      std::vector<float> y(size_t(rows * o.tokens));
      for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni}) {
        if (!supported(isa)) continue;
        const double seconds = bench::best_seconds(o.repeat, [&] {
          for (int c = 0; c < copies; ++c) product(format, s, c, rows, cols, x.data(), x_bf16.data(), o.tokens, y.data(), isa);
        }) / copies;
        const double gbps = double(s.bytes_per_copy) / seconds / 1e9;
        const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
        std::printf("%-6s %-7s %-13s %9.0f %9.1f %7.0f%% %8.1f\n", format.c_str(), isa_name(isa), shape.c_str(),
                    seconds * 1e6, gbps, 100 * gbps / stream, 2.0 * double(rows * cols * o.tokens) / seconds / 1e9);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return wavllm::bench::guarded_main("bench_kernels", run, argc, argv); }

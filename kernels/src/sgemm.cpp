#include "wavllm/kernels/sgemm.h"

#include <dlfcn.h>
#include <dnnl.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <vector>
#include <stdexcept>

#include "wavllm/kernels/convert.h"
#include "wavllm/kernels/isa.h"

namespace wavllm::kernels {

void sgemm(bool transpose_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
           float beta, float* c, int64_t ldc) {
  const dnnl_status_t status = dnnl_sgemm('N', transpose_b ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
  if (status != dnnl_success)
    throw std::runtime_error("oneDNN's sgemm failed (status " + std::to_string(int(status)) + ") on a " +
                             std::to_string(m) + "x" + std::to_string(k) + " by " + std::to_string(k) + "x" +
                             std::to_string(n) + " product");
}

void sgemm_nt(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c) {
  sgemm(true, m, n, k, a, k, b, k, 0.0f, c, n);
}

constexpr int64_t kPanelBytes = int64_t(8) << 20;  // B's rows widened at a time (sgemm_bf16_nt)

void sgemm_bf16_nt(int64_t m, int64_t n, int64_t k, const uint16_t* a, const uint16_t* b, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  // Buffers each calling thread keeps and grows: fresh ones fault their pages in at every product
  // (page faults were 27 % of a bfloat16 encoder run's samples before).
  thread_local std::vector<float> a32, panel;
  a32.resize(std::max(a32.size(), size_t(m * k)));
  widen_bf16(a, m * k, a32.data());
  const int64_t panel_rows = std::min(n, std::max<int64_t>(16, kPanelBytes / (4 * std::max<int64_t>(k, 1))));
  panel.resize(std::max(panel.size(), size_t(panel_rows * k)));
  for (int64_t r0 = 0; r0 < n; r0 += panel_rows) {
    const int64_t rows = std::min(panel_rows, n - r0);
    widen_bf16(b + r0 * k, rows * k, panel.data());
    sgemm(true, m, rows, k, a32.data(), k, panel.data(), k, 0.0f, c + r0, ldc);
  }
}

std::string blas_core_name() {
  // LibTorch links the BLAS Debian's alternatives choose; only OpenBLAS has this function.
  using CoreName = char* (*)();
  const auto name = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* text = name ? name() : nullptr;
  return text ? text : "";
}

namespace {

// OpenBLAS's x86-64 cores whose kernels use AVX2 and FMA (or AVX-512).
bool core_has_avx2(const std::string& core) {
  static const std::set<std::string> wide = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "Excavator"};
  return wide.count(core) > 0;
}

}  // namespace

const char* fp32_gemm_name(Fp32Gemm g) { return g == Fp32Gemm::Onednn ? "onednn" : "blas"; }

namespace {

// The backend of the products below kOnednnRows rows, and whether WAVLLM_FP32_GEMM forced it
// for every size.
struct Choice {
  Fp32Gemm narrow = Fp32Gemm::Blas;
  bool forced = false;
};

const Choice& choice() {
  static const Choice c = [] {
    if (const char* env = std::getenv("WAVLLM_FP32_GEMM"); env && *env) {
      const std::string v = env;
      if (v == "blas") return Choice{Fp32Gemm::Blas, true};
      if (v == "onednn") return Choice{Fp32Gemm::Onednn, true};
      throw std::runtime_error("WAVLLM_FP32_GEMM=" + v + ": unknown (blas or onednn)");
    }
    const std::string core = blas_core_name();
    const bool narrow_blas = core.empty() || (supported(Isa::Avx2) && !core_has_avx2(core));
    return Choice{narrow_blas ? Fp32Gemm::Onednn : Fp32Gemm::Blas, false};
  }();
  return c;
}

}  // namespace

Fp32Gemm fp32_gemm(int64_t rows) {
  const Choice& c = choice();
  return c.forced || rows < kOnednnRows ? c.narrow : Fp32Gemm::Onednn;
}

std::string fp32_gemm_summary() {
  const Choice& c = choice();
  if (c.forced || c.narrow == Fp32Gemm::Onednn) return fp32_gemm_name(c.narrow);
  return "blas below " + std::to_string(kOnednnRows) + " rows, onednn from there";
}

Bf16Gemm bf16_gemm() {
  static const Bf16Gemm g = [] {
    if (const char* env = std::getenv("WAVLLM_BF16_GEMM"); env && *env) {
      const std::string v = env;
      if (v == "native") return Bf16Gemm::Native;
      if (v == "float32") return Bf16Gemm::Float32;
      throw std::runtime_error("WAVLLM_BF16_GEMM=" + v + ": unknown (native or float32)");
    }
    return has_avx512() ? Bf16Gemm::Native : Bf16Gemm::Float32;
  }();
  return g;
}

const char* bf16_gemm_name(Bf16Gemm g) { return g == Bf16Gemm::Native ? "native" : "float32"; }

}  // namespace wavllm::kernels

#include "wavllm/kernels/sgemm.h"

#include <dlfcn.h>
#include <dnnl.h>

#include <cstdlib>
#include <set>
#include <stdexcept>

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

}  // namespace wavllm::kernels

#pragma once
// float32 matrix products that do not depend on the BLAS's CPU detection (docs/kernels.md):
// Debian's OpenBLAS 0.3.21 falls back to its generic SSE kernels on CPUs it does not know, a
// sixth of the machine's rate. oneDNN's JIT sgemm picks its code from the instruction sets
// CPUID reports, so the engine's float32 products go through it whenever the BLAS that LibTorch
// calls runs narrower kernels than the CPU has.
#include <cstdint>
#include <string>

namespace wavllm::kernels {

enum class Fp32Gemm { Blas, Onednn };

// C [m, n] = beta C + A [m, k] op(B), row-major with leading dimensions lda, ldb, ldc; op(B) is
// B [k, n], or B^T for B [n, k] when transpose_b. On the calling thread's OpenMP threads; a
// std::runtime_error if oneDNN fails.
void sgemm(bool transpose_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
           float beta, float* c, int64_t ldc);
// C [m, n] = A [m, k] B^T with B [n, k], all contiguous: a Linear layer's product.
void sgemm_nt(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c);

// What OpenBLAS says it runs ("Prescott", "Haswell", "SkylakeX"...), "" for a BLAS that is not
// OpenBLAS (the reference BLAS, say).
std::string blas_core_name();

// The backend of a float32 product with `rows` rows (more than decoding's): oneDNN from
// kOnednnRows rows on (the encoders' 1500-row products, where it measured 1.2-1.4x OpenBLAS's
// best here: eval/RESULTS.md), and below that when the BLAS is not OpenBLAS or OpenBLAS runs
// kernels without AVX2 on a CPU that has AVX2; else the BLAS. WAVLLM_FP32_GEMM=blas|onednn
// forces one for every size (a std::runtime_error for another value). Read once.
constexpr int64_t kOnednnRows = 1024;
Fp32Gemm fp32_gemm(int64_t rows);
const char* fp32_gemm_name(Fp32Gemm g);
// The choice in words, for `wavllm --version`: "onednn", "blas", or "blas below 1024 rows, onednn from there".
std::string fp32_gemm_summary();

}  // namespace wavllm::kernels

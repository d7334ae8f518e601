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

// C [m, n] = A [m, k] B^T for bfloat16 A [m, k] and B [n, k] (bits, contiguous), float32 C with
// leading dimension ldc: both widened to float32 (exact: a bfloat16 value is a float32 with its
// low 16 bits zero) and multiplied by oneDNN's sgemm. B is widened a panel of rows at a time
// (about 8 MB, so it is still in cache when the product reads it), never as a whole copy.
void sgemm_bf16_nt(int64_t m, int64_t n, int64_t k, const uint16_t* a, const uint16_t* b, float* c, int64_t ldc);

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

// How bfloat16 products with more rows than decoding's run. LibTorch 1.13 gives them to oneDNN
// only on CPUs with AVX-512 (has_avx512()); elsewhere it runs a scalar loop: 2.6 GFLOP/s against
// 71 in float32 on an AVX2 Zen3 (eval/RESULTS.md). There the engine widens the operands to
// float32 and runs the float32 product (Float32): each product of two bfloat16 values is exact in
// float32 and the sums are float32, as in oneDNN's bfloat16 product. WAVLLM_BF16_GEMM=native|float32
// forces one (a std::runtime_error for another value). Read once.
enum class Bf16Gemm { Native, Float32 };
Bf16Gemm bf16_gemm();
const char* bf16_gemm_name(Bf16Gemm g);

}  // namespace wavllm::kernels

#pragma once
// Which instruction set the kernels run with: the best the CPU has (CPUID, checked with the
// operating system's support for the wide registers), or the one WAVLLM_ISA names
// ("scalar", "avx2", "avx512"), so that tests can run every path on one machine.
namespace wavllm::kernels {

enum class Isa { Scalar, Avx2, Avx512Vnni };

// The best path this CPU runs: Avx512Vnni needs AVX-512 F/BW/DQ/VL and VNNI; Avx2 needs AVX2
// and FMA.
Isa detected_isa();
// WAVLLM_ISA when set (a path the CPU lacks, or an unknown name, is a std::runtime_error
// naming it), else detected_isa(). Read once.
Isa active_isa();
bool supported(Isa isa);
// AVX-512 F/BW/DQ/VL with the operating system's support for its registers, VNNI or not: what
// LibTorch 1.13 asks of a CPU before it multiplies bfloat16 matrices with oneDNN.
bool has_avx512();
const char* isa_name(Isa isa);

}  // namespace wavllm::kernels

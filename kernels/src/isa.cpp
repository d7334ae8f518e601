#include "wavllm/kernels/isa.h"
#include "wavllm/kernels/bf16.h"

#include <cpuid.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace wavllm::kernels {

namespace {

struct Features {
  bool avx2 = false, fma = false, avx512 = false, vnni = false, bf16 = false;
};

uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

Features probe() {
  Features f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & bit_OSXSAVE;
  f.fma = c & bit_FMA;
  if (!osxsave) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm = (xcr0 & 0x6) == 0x6;      // SSE and AVX state
  const bool zmm = (xcr0 & 0xe6) == 0xe6;    // plus opmask and the upper ZMM registers
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2 = ymm && (b & bit_AVX2);
  f.avx512 = zmm && (b & bit_AVX512F) && (b & bit_AVX512BW) && (b & bit_AVX512DQ) && (b & bit_AVX512VL);
  f.vnni = f.avx512 && (c & bit_AVX512VNNI);
  if (f.avx512 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) f.bf16 = a & (1u << 5);  // AVX512_BF16
  return f;
}

const Features& features() {
  static const Features f = probe();
  return f;
}

}  // namespace

bool supported(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return features().avx2 && features().fma;
    case Isa::Avx512Vnni: return features().vnni && features().fma;
  }
  return false;
}

bool has_avx512() { return features().avx512; }

bool has_avx512_bf16() {
  static const bool on = features().bf16 && std::getenv("WAVLLM_NO_AVX512_BF16") == nullptr;
  return on;
}

Isa detected_isa() {
  if (supported(Isa::Avx512Vnni)) return Isa::Avx512Vnni;
  if (supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Scalar;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512Vnni: return "avx512";
  }
  return "?";
}

Isa active_isa() {
  static const Isa isa = [] {
    const char* env = std::getenv("WAVLLM_ISA");
    if (!env || !*env) return detected_isa();
    for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni})
      if (std::string(env) == isa_name(i)) {
        if (!supported(i)) throw std::runtime_error(std::string("WAVLLM_ISA=") + env + ": this CPU lacks that instruction set");
        return i;
      }
    throw std::runtime_error(std::string("WAVLLM_ISA=") + env + ": unknown (scalar, avx2 or avx512)");
  }();
  return isa;
}

}  // namespace wavllm::kernels

#pragma once
// The tensors a model of a given config has, as its layers declare them (nn::Scope): names as
// in the WavLLM checkpoint's `model` state dict, shapes, and for each axis the config field it
// measures. One ModelSpec serves the loader's checks, the random-model generator and the
// converter (which reads config sizes off a checkpoint's shapes through the axis sources).
#include <cstdint>
#include <string>
#include <vector>

namespace wavllm {

enum class InitKind { Normal, Ones, Zeros };

// How a tensor is stored: in the model's float dtype, or as a quantized matrix's values and
// scales (docs/kernels.md), used as stored: Q8_0 int8 values and float32 scales, Q4_0 packed
// nibbles (U8) and bfloat16 scales.
enum class Storage { Float, Q8Values, Q8Scales, Q4Values, Q4Scales };

// One axis of a declared tensor: its size and, when the size is a config field, which one.
// size = factor * config[key] / config[per] (per empty: / 1).
struct Dim {
  int64_t size = 0;
  std::string key;  // "whisper.d_model", "wavlm.conv_dim.3"; empty: a constant or derived size
  int64_t factor = 1;
  std::string per;

  Dim() = default;
  Dim(int64_t n) : size(n) {}  // NOLINT(google-explicit-constructor): constants read as numbers
  Dim(int64_t n, std::string config_key) : size(n), key(std::move(config_key)) {}
  // factor x this size (a GLU conv's doubled channels).
  Dim times(int64_t f) const;
  // This size over another config field (a head's width: hidden_size / num_attention_heads).
  Dim over(const Dim& divisor) const;
};

struct TensorDecl {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<Dim> dims;      // shape with the config field of each axis
  bool used = true;           // false: present in checkpoints, ignored by inference (audio_proj.*)
  bool quantizable = false;   // a matrix a quantized format stores (the decoder layers' projections)
  InitKind init = InitKind::Normal;  // how the random-model generator fills it
  Storage storage = Storage::Float;
};

// A block repeated config[key] times: tensors "<prefix>0.", "<prefix>1.", ...
struct RepeatDecl {
  std::string key, prefix;
};

// A boolean config field that decides whether `tensor` exists (declared for either value).
struct FlagDecl {
  std::string key, tensor;
};

struct ModelSpec {
  std::vector<TensorDecl> tensors;
  std::vector<RepeatDecl> repeats;
  std::vector<FlagDecl> flags;

  // {"tensors": [{"name", "shape", "dims", "used", "quantizable", "stored"}...], "repeats": [...],
  // "flags": [...]}: what `wavllm spec` prints and the converter reads ("stored": storage_name).
  std::string to_json() const;
};

std::string shape_str(const std::vector<int64_t>& shape);

// "" when a tensor stored with safetensors dtype `dtype_name` ("F32", "BF16", "I8", ...) fits
// `storage`, else what is wrong ("is I8, expected a floating-point dtype").
std::string storage_problem(Storage storage, const std::string& dtype_name);
// "float", "q8_0 values", "q8_0 scales", "q4_0 values", "q4_0 scales".
const char* storage_name(Storage storage);

}  // namespace wavllm

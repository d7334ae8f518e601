#pragma once
// `wavllm quantize`: a float model directory to a quantized one (docs/kernels.md). The matrices
// the layers mark quantizable (the decoder layers' projections) are stored in the format; every
// other tensor keeps its stored dtype. config.json records the format.
#include <string>

namespace wavllm {

// in_dir: a float model directory; out_dir: new or empty (written beside, moved in when
// complete). An Error for an unknown format or an input that is already quantized.
void quantize_model(const std::string& in_dir, const std::string& out_dir, const std::string& format);

}  // namespace wavllm

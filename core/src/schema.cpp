#include "wavllm/core/schema.h"

#include <nlohmann/json.hpp>

namespace wavllm {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

class SchemaBuilder {
 public:
  std::vector<TensorSchema> out;
  void add(const std::string& name, std::vector<int64_t> shape, InitKind init = InitKind::Normal, bool used = true) {
    out.push_back({name, std::move(shape), used, init});
  }
  void linear(const std::string& p, int64_t out_f, int64_t in_f, bool bias = true) {
    add(p + ".weight", {out_f, in_f});
    if (bias) add(p + ".bias", {out_f});
  }
  void norm(const std::string& p, int64_t n, bool bias = true) {
    add(p + ".weight", {n}, InitKind::Ones);
    if (bias) add(p + ".bias", {n}, InitKind::Zeros);
  }
  // Conv1dSubsampler (two GLU convs), bottleneck adapter and projector of one branch.
  void branch(const std::string& p, int64_t in_ch, int64_t mid, const AdapterConfig& a) {
    add(p + ".subsample.conv_layers.0.weight", {mid, in_ch, 3});
    add(p + ".subsample.conv_layers.0.bias", {mid});
    add(p + ".subsample.conv_layers.1.weight", {2 * int64_t(a.sub_out), mid / 2, 3});
    add(p + ".subsample.conv_layers.1.bias", {2 * int64_t(a.sub_out)});
    linear(p + ".adapter.down_layer", a.adapter_down, a.sub_out);
    linear(p + ".adapter.up_layer", a.sub_out, a.adapter_down);
    norm(p + ".adapter.layer_norm", a.sub_out);
    linear(p + ".projector", a.branch_dim, a.sub_out);
  }
};

}  // namespace

std::vector<TensorSchema> model_schema(const ModelConfig& cfg) {
  SchemaBuilder b;
  const auto& w = cfg.whisper;
  const std::string wp = "audio_encoder.model.";
  b.add(wp + "conv1.weight", {w.d_model, w.num_mel_bins, 3});
  b.add(wp + "conv1.bias", {w.d_model});
  b.add(wp + "conv2.weight", {w.d_model, w.d_model, 3});
  b.add(wp + "conv2.bias", {w.d_model});
  b.add(wp + "embed_positions.weight", {w.max_source_positions, w.d_model});
  for (int i = 0; i < w.encoder_layers; ++i) {
    const std::string p = wp + "layers." + std::to_string(i) + ".";
    b.linear(p + "self_attn.q_proj", w.d_model, w.d_model);
    b.linear(p + "self_attn.k_proj", w.d_model, w.d_model, /*bias=*/false);
    b.linear(p + "self_attn.v_proj", w.d_model, w.d_model);
    b.linear(p + "self_attn.out_proj", w.d_model, w.d_model);
    b.norm(p + "self_attn_layer_norm", w.d_model);
    b.linear(p + "fc1", w.encoder_ffn_dim, w.d_model);
    b.linear(p + "fc2", w.d_model, w.encoder_ffn_dim);
    b.norm(p + "final_layer_norm", w.d_model);
  }
  b.norm(wp + "layer_norm", w.d_model);
  b.branch("audio_encoder", w.d_model, cfg.adapter.whisper_sub_mid, cfg.adapter);

  const auto& v = cfg.wavlm;
  const std::string vp = "wavlm_encoder.model.";
  for (size_t i = 0; i < v.conv_dim.size(); ++i) {
    const std::string p = vp + "feature_extractor.conv_layers." + std::to_string(i) + ".";
    b.add(p + "conv.weight", {v.conv_dim[i], i == 0 ? 1 : v.conv_dim[i - 1], v.conv_kernel[i]});
    if (v.conv_bias) b.add(p + "conv.bias", {v.conv_dim[i]});
    if (i == 0) b.norm(p + "layer_norm", v.conv_dim[0]);  // GroupNorm, one group per channel
  }
  b.norm(vp + "feature_projection.layer_norm", v.conv_dim.back());
  b.linear(vp + "feature_projection.projection", v.hidden_size, v.conv_dim.back());
  b.add(vp + "masked_spec_embed", {v.hidden_size}, InitKind::Normal, /*used=*/false);
  const int64_t groups = v.num_conv_pos_embedding_groups;
  b.add(vp + "encoder.pos_conv_embed.conv.weight_g", {1, 1, v.num_conv_pos_embeddings}, InitKind::Ones);
  b.add(vp + "encoder.pos_conv_embed.conv.weight_v", {v.hidden_size, v.hidden_size / groups, v.num_conv_pos_embeddings});
  b.add(vp + "encoder.pos_conv_embed.conv.bias", {v.hidden_size});
  b.norm(vp + "encoder.layer_norm", v.hidden_size);
  const int64_t vhead = v.hidden_size / v.num_attention_heads;
  for (int i = 0; i < v.num_hidden_layers; ++i) {
    const std::string p = vp + "encoder.layers." + std::to_string(i) + ".";
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"})
      b.linear(p + "attention." + proj, v.hidden_size, v.hidden_size);
    b.add(p + "attention.gru_rel_pos_const", {1, v.num_attention_heads, 1, 1}, InitKind::Ones);
    b.linear(p + "attention.gru_rel_pos_linear", 8, vhead);
    if (i == 0) b.add(p + "attention.rel_attn_embed.weight", {v.num_buckets, v.num_attention_heads});
    b.norm(p + "layer_norm", v.hidden_size);
    b.linear(p + "feed_forward.intermediate_dense", v.intermediate_size, v.hidden_size);
    b.linear(p + "feed_forward.output_dense", v.hidden_size, v.intermediate_size);
    b.norm(p + "final_layer_norm", v.hidden_size);
  }
  b.add("wavlm_encoder.output_weights", {v.num_hidden_layers + 1}, InitKind::Zeros);
  b.branch("wavlm_encoder", v.hidden_size, cfg.adapter.wavlm_sub_mid, cfg.adapter);

  const auto& l = cfg.llama;
  b.linear("wavlm_audio_proj", l.dim, 2 * int64_t(cfg.adapter.branch_dim));
  b.out.push_back({"audio_proj.weight", {l.dim, cfg.adapter.branch_dim}, false, InitKind::Normal});
  b.out.push_back({"audio_proj.bias", {l.dim}, false, InitKind::Zeros});

  const std::string lp = "gpt_model.model_llama.";
  b.add(lp + "tok_embeddings.weight", {l.vocab_size, l.dim});
  for (int i = 0; i < l.n_layers; ++i) {
    const std::string p = lp + "layers." + std::to_string(i) + ".";
    for (const char* m : {"wq", "wk", "wv", "wo"}) {
      b.add(p + "attention." + m + ".weight", {l.dim, l.dim});
      b.add(p + "attention." + m + "_lora_A", {l.dim, l.lora_r});
      b.add(p + "attention." + m + "_lora_B", {l.lora_r, l.dim});
    }
    b.linear(p + "feed_forward.w1", l.ffn_dim, l.dim, false);
    b.linear(p + "feed_forward.w2", l.dim, l.ffn_dim, false);
    b.linear(p + "feed_forward.w3", l.ffn_dim, l.dim, false);
    b.norm(p + "attention_norm", l.dim, false);
    b.norm(p + "ffn_norm", l.dim, false);
  }
  b.norm(lp + "norm", l.dim, false);
  b.linear(lp + "output", l.vocab_size, l.dim, false);
  b.linear(lp + "scale_fc_1", l.prompt_hidden, l.dim);
  b.linear(lp + "scale_fc_2", l.dim, l.prompt_hidden);
  b.linear(lp + "scale_weight_attention", 1, l.dim);
  return b.out;
}

std::string model_schema_json(const ModelConfig& cfg) {
  nlohmann::json list = nlohmann::json::array();
  for (const TensorSchema& t : model_schema(cfg)) list.push_back({{"name", t.name}, {"shape", t.shape}, {"used", t.used}});
  return list.dump(1) + "\n";
}

}  // namespace wavllm

// Prompt-aware LoRA scale and greedy decoding against the reference stages of every fixture case,
// starting from the fixture's audio embeddings.
#include <gtest/gtest.h>

#include "decoder_fixtures.h"

namespace {

using namespace wavllm;
using namespace wavllm::test;

TEST(DecoderParity, PromptScaleMatchesEveryStage) {
  const auto cases = stage_cases();
  ASSERT_FALSE(cases.empty());
  for (const auto& name : cases) {
    const auto s = stage_inputs(name);
    WAVLLM_EXPECT_CLOSE_REL(demo_scale(s.prompt), load_tensor(*s.file, "prompt_scale"), name + " prompt_scale");
  }
}

TEST(DecoderParity, GreedyDecodingMatchesEveryStage) {
  for (const auto& name : stage_cases()) {
    const auto s = stage_inputs(name);
    const auto ref_generated = s.file->read_i64("generated_ids");
    GenerationOptions opt;
    opt.max_new_tokens = static_cast<int>(ref_generated.size());
    opt.return_step_logits = true;
    const auto r = demo_complete(s, opt);
    EXPECT_EQ(r.decoded_tokens, s.file->read_i64("decoded_tokens")) << name;
    EXPECT_EQ(r.generated_ids, ref_generated) << name;
    const at::Tensor ref = load_tensor(*s.file, "step_logits");
    ASSERT_EQ(r.step_logits.sizes(), ref.sizes()) << name;
    for (int64_t step = 0; step < ref.size(0); ++step)
      EXPECT_LE(max_abs_diff(r.step_logits[step], ref[step]), 1e-3) << name << " step " << step;
    EXPECT_EQ(r.text, demo().tok.decode(r.generated_ids)) << name;
  }
}

// The same logits whether positions arrive together (prefill) or one by one (KV cache).
TEST(Llama, CachedStepsEqualOneLongForward) {
  c10::InferenceMode guard;
  const auto& llm = demo().llm;
  const std::vector<int64_t> ids = {1, 300, 301, 17, 42, 99, 250};
  const at::Tensor scale = at::rand({demo().cfg.llama.dim}, at::TensorOptions().dtype(at::kFloat)) * 2;
  auto whole = llm.new_cache(1, ids.size());
  const at::Tensor all_at_once = llm.forward(llm.embed(ids), whole, scale);
  auto steps = llm.new_cache(1, ids.size());
  at::Tensor last = llm.forward(llm.embed({ids.begin(), ids.begin() + 3}), steps, scale);
  for (size_t i = 3; i < ids.size(); ++i) last = llm.forward(llm.embed({ids[i]}), steps, scale);
  EXPECT_EQ(steps.length(), static_cast<int64_t>(ids.size()));
  EXPECT_LE(max_abs_diff(last, all_at_once), 1e-4);
}

// A zero LoRA scale leaves the base model: the prompt path (no LoRA) and the decoding path agree.
TEST(Llama, ZeroScaleIsTheBaseModel) {
  c10::InferenceMode guard;
  const auto& d = demo();
  const std::vector<int64_t> ids = {1, 300, 301, 17};
  auto cache = d.llm.new_cache(1, ids.size());
  const at::Tensor logits = d.llm.forward(d.llm.embed(ids), cache, at::zeros({d.cfg.llama.dim}));
  const at::Tensor h = d.llm.prompt_hidden(ids)[-1];
  const at::Tensor normed = h * at::rsqrt(h.pow(2).mean() + d.cfg.llama.norm_eps) *
                            d.w.get("gpt_model.model_llama.norm.weight");
  const at::Tensor expected = at::matmul(d.w.get("gpt_model.model_llama.output.weight"), normed);
  EXPECT_LE(max_abs_diff(logits[0], expected), 1e-4);
}

TEST(Llama, RunsInBfloat16) {
  const auto& d = demo();
  const Weights half = Weights::load(demo_dir(), model_spec(d.cfg), at::kCPU, at::kBFloat16);
  const decoder::Llama llm(d.cfg.llama, decoder_module(nn::Scope::binding(half)));
  const adapter::PromptAdapter pa(d.cfg.llama, decoder_module(nn::Scope::binding(half)));
  const auto s = stage_inputs(stage_cases().front());
  const at::Tensor scale = pa.scale(llm.prompt_hidden(s.prompt.orig));
  EXPECT_EQ(scale.scalar_type(), at::kBFloat16);
  GenerationOptions opt;
  opt.max_new_tokens = 3;
  opt.return_step_logits = true;
  const auto r = decoder::complete(llm, d.tok, s.audio_embeds, s.prompt, scale, opt);
  const std::vector<int64_t> forced(s.prompt.right.begin() + 1, s.prompt.right.end());
  EXPECT_EQ(std::vector<int64_t>(r.decoded_tokens.begin(), r.decoded_tokens.begin() + forced.size()), forced);
  EXPECT_EQ(r.generated_ids.size(), 3u);
  EXPECT_TRUE(at::isfinite(r.step_logits).all().item<bool>());

  // A prefill's logits (every product of a layer: projections, LoRA, q k^T, p v) near float32's.
  // Mostly the weights' own rounding to bfloat16: 0.76 % of max |logits| with the products widened
  // to float32, 1.2 % through LibTorch 1.13's scalar bfloat16 loop (AVX2 Zen3), so 2 % catches a
  // product gone wrong, not that loop (Encoders.RunInTheWeightsDtype does: 34 % there).
  c10::InferenceMode guard;
  std::vector<int64_t> ids;
  for (int i = 0; i < 4; ++i) ids.insert(ids.end(), s.prompt.orig.begin(), s.prompt.orig.end());
  const at::Tensor lora = at::full({d.cfg.llama.dim}, 1.5);
  auto cache32 = d.llm.new_cache(1, int64_t(ids.size()));
  auto cache16 = llm.new_cache(1, int64_t(ids.size()));
  const at::Tensor ref = d.llm.forward(d.llm.embed(ids), cache32, lora);
  const at::Tensor got = llm.forward(llm.embed(ids), cache16, lora.to(at::kBFloat16));
  EXPECT_LE(max_abs_diff(got, ref), 0.02 * ref.abs().max().item<double>());
}

}  // namespace

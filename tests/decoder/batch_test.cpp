// Continuous batching (decoder::Sequence, decoder::step): sequences that join and leave a batch
// at any step decode to exactly what each decodes alone, for every weight format.
#include <gtest/gtest.h>

#include <memory>

#include "decoder_fixtures.h"
#include "test_util.h"
#include "wavllm/core/error.h"
#include "wavllm/pipeline/quantize.h"

namespace {

using namespace wavllm;
using namespace wavllm::test;

// The demo decoder with its weights in one format: float32, bfloat16 or a quantized folder.
struct Variant {
  std::string name;
  ModelConfig cfg;
  Weights w;
  decoder::Llama llm;
  adapter::PromptAdapter prompt_adapter;
  Variant(std::string n, const std::string& dir, at::ScalarType dtype)
      : name(std::move(n)),
        cfg(ModelConfig::load(dir)),
        w(Weights::load(dir, model_spec(cfg), at::kCPU, dtype)),
        llm(cfg.llama, decoder_module(scope())),
        prompt_adapter(cfg.llama, decoder_module(scope())) {}
  nn::Scope scope() const { return nn::Scope::binding(w).with_quantization(cfg.quantization.format); }
};

const std::vector<std::unique_ptr<Variant>>& variants() {
  static TempDir* scratch = new TempDir;  // for the whole run
  static const auto all = [] {
    std::vector<std::unique_ptr<Variant>> v;
    v.push_back(std::make_unique<Variant>("float32", demo_dir(), at::kFloat));
    v.push_back(std::make_unique<Variant>("bfloat16", demo_dir(), at::kBFloat16));
    for (const char* format : {"q8_0", "q4_0"}) {
      const std::string dir = scratch->file(format);
      quantize_model(demo_dir(), dir, format);
      v.push_back(std::make_unique<Variant>(format, dir, at::kFloat));
    }
    return v;
  }();
  return all;
}

struct Request {
  StageInputs in;
  at::Tensor scale;
  GenerationOptions opt;
};

std::vector<Request> requests(const Variant& v) {
  std::vector<Request> out;
  for (const std::string& name : stage_cases()) {
    Request r{stage_inputs(name), {}, {}};
    r.scale = v.prompt_adapter.scale(v.llm.prompt_hidden(r.in.prompt.orig));
    r.opt.max_new_tokens = 6 + int(out.size()) * 3;  // rows leave the batch at different steps
    r.opt.return_step_logits = true;
    out.push_back(std::move(r));
  }
  return out;
}

decoder::Sequence sequence(const Variant& v, const Request& r) {
  return decoder::Sequence(v.llm, demo().tok, r.in.audio_embeds, r.in.prompt, r.scale, r.opt);
}

// Every fixture case, each joining the running batch one step after the previous one: tokens,
// log-probabilities and every step's logits have the bits of the case decoded alone.
TEST(ContinuousBatching, EachSequenceDecodesAsItDoesAlone) {
  for (const auto& v : variants()) {
    const std::vector<Request> reqs = requests(*v);
    ASSERT_GE(reqs.size(), 4u);
    std::vector<decoder::Completion> alone;
    for (const Request& r : reqs)
      alone.push_back(decoder::complete(v->llm, demo().tok, r.in.audio_embeds, r.in.prompt, r.scale, r.opt));
    std::vector<decoder::Sequence> batch;
    size_t most_live = 0;
    for (size_t joined = 0; joined < reqs.size() || std::any_of(batch.begin(), batch.end(), [](auto& s) { return !s.done(); });) {
      if (joined < reqs.size()) {
        batch.push_back(sequence(*v, reqs[joined++]));
        batch.back().prefill();
      }
      std::vector<decoder::Sequence*> rows;
      for (auto& s : batch) rows.push_back(&s);
      most_live = std::max<size_t>(most_live, std::count_if(batch.begin(), batch.end(), [](auto& s) { return !s.done(); }));
      decoder::step(v->llm, rows);
    }
    EXPECT_GE(most_live, 3u) << v->name;  // the batch really held several rows at once
    for (size_t i = 0; i < reqs.size(); ++i) {
      const decoder::Completion b = batch[i].finish();
      EXPECT_EQ(b.decoded_tokens, alone[i].decoded_tokens) << v->name << " case " << i;
      EXPECT_EQ(b.generated_logprobs, alone[i].generated_logprobs) << v->name << " case " << i;
      EXPECT_TRUE(at::equal(b.step_logits, alone[i].step_logits)) << v->name << " case " << i;
      EXPECT_EQ(b.text, alone[i].text);
    }
  }
}

// A row stopped mid-batch (a cancelled request) ends where it is; the others go on unchanged.
TEST(ContinuousBatching, AStoppedRowLeavesTheOthersUnchanged) {
  const Variant& v = *variants().front();
  const std::vector<Request> reqs = requests(v);
  std::vector<decoder::Sequence> batch;
  for (size_t i = 0; i < 3; ++i) {
    batch.push_back(sequence(v, reqs[i]));
    batch.back().prefill();
  }
  std::vector<decoder::Sequence*> rows{&batch[0], &batch[1], &batch[2]};
  decoder::step(v.llm, rows);
  batch[1].stop();
  EXPECT_TRUE(batch[1].done());
  const size_t kept = batch[1].generated();
  while (!batch[0].done() || !batch[2].done()) decoder::step(v.llm, rows);
  EXPECT_EQ(batch[1].generated(), kept);
  for (size_t i : {0u, 2u}) {
    const auto alone = decoder::complete(v.llm, demo().tok, reqs[i].in.audio_embeds, reqs[i].in.prompt, reqs[i].scale, reqs[i].opt);
    EXPECT_EQ(batch[i].finish().decoded_tokens, alone.decoded_tokens);
  }
}

TEST(ContinuousBatching, MisuseIsAnError) {
  const Variant& v = *variants().front();
  const Request r = requests(v).front();
  GenerationOptions beams = r.opt;
  beams.num_beams = 2;
  EXPECT_THROW(decoder::Sequence(v.llm, demo().tok, r.in.audio_embeds, r.in.prompt, r.scale, beams), ArgumentError);
  decoder::Sequence s = sequence(v, r);
  EXPECT_THROW(s.finish(), Error);  // not done yet
  s.prefill();
  EXPECT_THROW(s.prefill(), Error);
  const at::Tensor wrong = at::zeros({2, v.cfg.llama.dim});
  EXPECT_THROW(v.llm.step(v.llm.embed({1}).view({1, 1, -1}), {}, wrong), Error);
}

}  // namespace

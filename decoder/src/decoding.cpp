#include "wavllm/decoder/decoding.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <set>

#include "wavllm/core/error.h"
#include "wavllm/core/runtime.h"
#include "wavllm/decoder/text_stream.h"

namespace wavllm::decoder {

namespace {

using Clock = std::chrono::steady_clock;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The reference generator's fixed rules for one request.
struct Rules {
  std::vector<int64_t> forced;  // right[1:], chosen at steps 0 .. F-1
  int64_t eos_step = 0;         // from this step on only EOS may be chosen (max_len in fairseq)
  int64_t last_step = 0;        // the step that chooses the last token (max_new_tokens, rotary table)
  int64_t eos = 2, unk = 0, pad = -1;
  int64_t free_start() const { return static_cast<int64_t>(forced.size()); }
};

void keep_only(float* p, int64_t n, int64_t id) {
  const float v = p[id];
  std::fill(p, p + n, kNegInf);
  p[id] = v;
}

// Masked log-probabilities of one step, as fairseq computes them: the model's log_softmax (after
// the repetition penalty and temperature), then -inf for what may not be chosen, without
// renormalising (a forced token keeps its own log-probability, which counts in the score).
at::Tensor step_logprobs(const at::Tensor& logits, int64_t step, const Rules& r, const std::vector<int64_t>& generated,
                         const GenerationOptions& opt) {
  at::Tensor x = logits.clone();
  const int64_t V = x.numel();
  float* p = x.data_ptr<float>();
  if (opt.repetition_penalty != 1)
    for (int64_t id : std::set<int64_t>(generated.begin(), generated.end()))
      p[id] = p[id] < 0 ? static_cast<float>(p[id] * opt.repetition_penalty)
                        : static_cast<float>(p[id] / opt.repetition_penalty);
  x = at::log_softmax(opt.temperature > 0 ? x / opt.temperature : x, -1).contiguous();
  p = x.data_ptr<float>();
  if (step >= r.eos_step) {
    keep_only(p, V, r.eos);
  } else if (step < r.free_start()) {
    keep_only(p, V, r.forced[step]);
  } else {
    p[r.unk] = kNegInf;
    if (r.pad >= 0) p[r.pad] = kNegInf;
    if (step == r.free_start()) p[r.eos] = kNegInf;  // at least one token after the prompt
    const size_t n = static_cast<size_t>(opt.no_repeat_ngram_size);
    if (n > 0 && generated.size() + 1 >= n) {
      // Ban every token that would complete an n-gram already present.
      const size_t tail = generated.size() - (n - 1);
      for (size_t i = 0; i + n <= generated.size(); ++i)
        if (std::equal(generated.begin() + i, generated.begin() + i + n - 1, generated.begin() + tail))
          p[generated[i + n - 1]] = kNegInf;
    }
  }
  return x;
}

// Nucleus / top-k sampling from masked log-probabilities, with the request's generator.
int64_t sample(const at::Tensor& logprobs, const GenerationOptions& opt, at::Generator& gen) {
  at::Tensor probs = logprobs.exp();
  probs.div_(probs.sum());
  if (opt.top_k > 0 && opt.top_k < probs.numel()) {
    const auto kth = std::get<0>(probs.topk(opt.top_k)).min();
    probs.masked_fill_(probs < kth, 0);
  }
  if (opt.top_p < 1) {
    probs.div_(probs.sum());
    const auto sorted = probs.sort(-1, /*descending=*/true);
    const auto& sp = std::get<0>(sorted);
    // Keep a token while the mass before it is below top_p: the token crossing top_p stays, and
    // so does the most likely one whatever top_p is (a top_p below float32's range is 0 here).
    const auto drop = (sp.cumsum(-1) - sp) >= opt.top_p;
    drop[0] = false;
    probs.index_put_({std::get<1>(sorted).masked_select(drop)}, 0);
  }
  return at::multinomial(probs, 1, false, gen).item<int64_t>();
}

struct Hypothesis {
  std::vector<int64_t> tokens;     // decoded after BOS
  std::vector<int64_t> generated;  // after the forced prefix
  std::vector<float> generated_logprobs;  // the log-probability each generated token had when chosen
  std::vector<int64_t> rows;       // row of each step's logits (beam search step_logits)
  double logprob = 0;
};

double normalised(double logprob, size_t length, double length_penalty) {
  return logprob / std::pow(static_cast<double>(length), length_penalty);
}

class Decoding {
 public:
  Decoding(const Llama& llm, const Tokenizer& tok, const at::Tensor& audio, const PromptIds& prompt,
           const at::Tensor& lora_scale, const GenerationOptions& opt)
      : llm_(llm), tok_(tok), audio_(audio), prompt_(prompt), scale_(lora_scale), opt_(opt) {
    const auto& cfg = llm.config();
    if (audio.dim() != 2 || audio.size(0) < 1 || audio.size(1) != cfg.dim)
      throw Error("decoder: audio embeddings must be [T >= 1, " + std::to_string(cfg.dim) + "], got " +
                  std::string(c10::str(audio.sizes())));
    if (prompt.left.empty() || prompt.right.empty())
      throw Error("decoder: the prompt's left and right token ids must not be empty");
    rules_.forced.assign(prompt.right.begin() + 1, prompt.right.end());
    rules_.eos = tok.eos_id();
    rules_.unk = tok.unk_id();
    rules_.pad = tok.pad_id();
    // Every id below indexes a logits row: none is used unchecked.
    const int64_t vocab = cfg.vocab_size;
    auto in_vocab = [vocab](int64_t id) { return id >= 0 && id < vocab; };
    if (!in_vocab(rules_.eos) || !in_vocab(rules_.unk) || rules_.pad >= vocab)
      throw Error("tokenizer " + tok.path() + ": special ids (eos " + std::to_string(rules_.eos) + ", unk " +
                  std::to_string(rules_.unk) + ", pad " + std::to_string(rules_.pad) +
                  ") must lie in the decoder's vocabulary of " + std::to_string(vocab));
    for (int64_t id : rules_.forced)
      if (!in_vocab(id)) throw Error("decoder: prompt token id " + std::to_string(id) + " is outside the vocabulary");
    const int64_t F = rules_.free_start();
    prompt_len_ = static_cast<int64_t>(prompt.left.size()) + audio.size(0) + 1;
    const int64_t table = cfg.max_positions();
    // Step s >= 1 feeds one token at position prompt_len + s - 1.
    if (prompt_len_ + F > table)
      throw ResourceError("decoder: context too long: " + std::to_string(prompt.left.size()) + " prompt tokens + " +
                  std::to_string(audio.size(0)) + " audio frames + BOS + " + std::to_string(F) +
                  " instruction tokens need " + std::to_string(prompt_len_ + F) +
                  " positions; the rotary table has " + std::to_string(table) + " (2 x llama.max_seq_len)");
    rules_.eos_step = opt.max_steps;
    // The last step that may run: its token is chosen but never fed, so the table bounds it like
    // max_new_tokens does (generation ends there without an EOS).
    rules_.last_step = std::min<int64_t>(opt.max_steps, table - prompt_len_);
    if (opt.max_new_tokens > 0) rules_.last_step = std::min<int64_t>(rules_.last_step, F + opt.max_new_tokens - 1);
  }

  Completion run(const TextCallback& on_text) {
    Completion res;
    const auto t0 = Clock::now();
    const int64_t capacity = prompt_len_ + rules_.last_step;
    if (llm_.device().is_cpu())
      check_memory_budget(request_bytes(capacity), available_memory_bytes(),
                          "decoding with a KV cache of " + std::to_string(opt_.num_beams) + " beam(s) x " +
                              std::to_string(capacity) + " positions");
    cache_.emplace(llm_.new_cache(opt_.num_beams, capacity));
    const auto prefill = at::cat({llm_.embed(prompt_.left), audio_.to(llm_.device(), llm_.dtype()),
                                  llm_.embed({tok_.bos_id()})});
    at::Tensor logits = checked(llm_.forward(prefill, *cache_, scale_).cpu());
    res.prefill_seconds = seconds_since(t0);
    const auto t1 = Clock::now();
    TextStream stream(tok_, opt_.stop);
    const Hypothesis best = opt_.num_beams > 1 ? beam(logits) : single(logits, stream, on_text);
    res.decoded_tokens = best.tokens;
    res.generated_ids = best.generated;
    res.generated_logprobs = best.generated_logprobs;
    res.score = normalised(best.logprob, best.tokens.size(), opt_.length_penalty);
    std::string rest;
    res.text = stream.finish(best.generated, rest);
    if (on_text && !rest.empty()) on_text(rest);
    if (opt_.return_step_logits) {
      std::vector<at::Tensor> rows;
      for (size_t s = 0; s < best.rows.size(); ++s) rows.push_back(step_rows_[s][best.rows[s]]);
      res.step_logits = at::stack(rows);
    }
    res.decode_seconds = seconds_since(t1);
    return res;
  }

 private:
  // Bytes one request holds at its peak: the KV cache; the prefill's attention (scores in the
  // compute dtype, their float32 copy and softmax, the probabilities cast back, the causal mask)
  // and its FFN; the logits of every step when they are kept.
  uint64_t request_bytes(int64_t capacity) const {
    const auto& c = llm_.config();
    const uint64_t elt = c10::elementSize(llm_.dtype()), t = uint64_t(prompt_len_), beams = uint64_t(opt_.num_beams);
    const uint64_t kv = 2ull * c.n_layers * beams * uint64_t(capacity) * c.dim * elt;
    const uint64_t prefill = uint64_t(c.n_heads) * t * t * (2 * elt + 8) + t * t * 4 + 3 * t * uint64_t(c.ffn_dim) * elt;
    const uint64_t logits = opt_.return_step_logits ? uint64_t(rules_.last_step + 1) * beams * c.vocab_size * 4 : 0;
    return kv + prefill + logits;
  }

  at::Tensor next_logits(const std::vector<int64_t>& tokens) {
    return checked(llm_.forward(llm_.embed(tokens).unsqueeze(1), *cache_, scale_).cpu());
  }

  // NaN logits would decode to an arbitrary token (argmax of NaN) or an empty answer. Checked in
  // place every step (float32 [rows, vocab] on the CPU): no tensor is made for it per token.
  at::Tensor checked(at::Tensor logits) const {
    const float* p = logits.data_ptr<float>();
    if (!std::all_of(p, p + logits.numel(), [](float v) { return std::isfinite(v); }))
      throw Error("the decoder produced non-finite logits (NaN or infinity) at position " +
                  std::to_string(cache_->length()) + ": its weights or its input embeddings hold NaN or infinite values");
    return logits;
  }

  // Greedy or sampling: one hypothesis, text streamed as it grows.
  Hypothesis single(at::Tensor logits, TextStream& stream, const TextCallback& on_text) {
    const bool follow_text = on_text || !opt_.stop.empty();
    std::optional<at::Generator> gen;
    if (opt_.temperature > 0)
      gen = at::make_generator<at::CPUGeneratorImpl>(opt_.seed ? *opt_.seed : std::random_device{}());
    Hypothesis h;
    for (int64_t step = 0;; ++step) {
      if (opt_.return_step_logits) {
        step_rows_.push_back(logits);
        h.rows.push_back(0);
      }
      const auto lp = step_logprobs(logits[0], step, rules_, h.generated, opt_);
      const bool free = step >= rules_.free_start() && step < rules_.eos_step;
      const int64_t token = gen && free ? sample(lp, opt_, *gen) : lp.argmax().item<int64_t>();
      const double token_lp = lp[token].item<double>();
      h.logprob += token_lp;
      h.tokens.push_back(token);
      if (token == rules_.eos) break;
      if (step >= rules_.free_start()) {
        h.generated.push_back(token);
        h.generated_logprobs.push_back(float(token_lp));
        if (follow_text) {
          const std::string piece = stream.push(h.generated);
          if (on_text && !piece.empty()) on_text(piece);
          if (stream.stopped()) break;
        }
      }
      if (step >= rules_.last_step) break;
      logits = next_logits({token});
    }
    return h;
  }

  // fairseq's beam search: 2k candidates per step from all live hypotheses by total log-prob; an
  // EOS among the k best finishes a hypothesis (score normalised by its length); the k best others
  // go on. Ends with k finished hypotheses or at the step limit.
  Hypothesis beam(at::Tensor logits) {
    const int64_t k = opt_.num_beams;
    std::vector<Hypothesis> live(1), done;
    std::vector<double> done_scores;
    for (int64_t step = 0;; ++step) {
      if (opt_.return_step_logits) step_rows_.push_back(logits);
      const int64_t b = static_cast<int64_t>(live.size());
      std::vector<at::Tensor> totals;
      for (int64_t i = 0; i < b; ++i)
        totals.push_back(step_logprobs(logits[i], step, rules_, live[i].generated, opt_).add_(live[i].logprob));
      const auto flat = at::stack(totals).view(-1);
      const int64_t V = logits.size(1);
      const auto top = flat.topk(std::min<int64_t>(2 * k, flat.numel()));
      const auto vals = std::get<0>(top).contiguous(), idx = std::get<1>(top).contiguous();
      const bool final_step = step >= rules_.last_step;
      std::vector<Hypothesis> next;
      std::vector<int64_t> parents;
      for (int64_t r = 0; r < vals.numel(); ++r) {
        const float total = vals.data_ptr<float>()[r];
        if (total == kNegInf) break;
        const int64_t row = idx.data_ptr<int64_t>()[r] / V, token = idx.data_ptr<int64_t>()[r] % V;
        const bool ends = token == rules_.eos || final_step;
        if (ends ? (r >= k || static_cast<int64_t>(done.size()) >= k) : static_cast<int64_t>(next.size()) >= k)
          continue;
        Hypothesis h = live[row];
        h.tokens.push_back(token);
        if (step >= rules_.free_start() && token != rules_.eos) {
          h.generated.push_back(token);
          h.generated_logprobs.push_back(float(double(total) - h.logprob));
        }
        h.rows.push_back(row);
        h.logprob = total;
        if (ends) {
          done_scores.push_back(normalised(total, h.tokens.size(), opt_.length_penalty));
          done.push_back(std::move(h));
        } else {
          next.push_back(std::move(h));
          parents.push_back(row);
        }
      }
      if (static_cast<int64_t>(done.size()) >= k || final_step || next.empty()) break;
      std::vector<int64_t> src(k, 0);
      std::copy(parents.begin(), parents.end(), src.begin());
      cache_->reorder(at::tensor(src, at::kLong));
      std::vector<int64_t> tokens;
      for (const auto& h : next) tokens.push_back(h.tokens.back());
      live = std::move(next);
      logits = next_logits(tokens);
    }
    if (done.empty()) throw Error("decoder: beam search ended without a hypothesis");
    const size_t best = std::max_element(done_scores.begin(), done_scores.end()) - done_scores.begin();
    return done[best];
  }

  const Llama& llm_;
  const Tokenizer& tok_;
  const at::Tensor& audio_;
  const PromptIds& prompt_;
  const at::Tensor& scale_;
  const GenerationOptions& opt_;
  Rules rules_;
  int64_t prompt_len_ = 0;
  std::optional<KVCache> cache_;
  std::vector<at::Tensor> step_rows_;  // logits [rows, vocab] of every step, when asked
};

}  // namespace

Completion complete(const Llama& llm, const Tokenizer& tok, const at::Tensor& audio_embeds,
                    const PromptIds& prompt, const at::Tensor& lora_scale, const GenerationOptions& opt,
                    const TextCallback& on_text) {
  opt.validate();
  if (tok.vocab_size() != llm.config().vocab_size)
    throw Error("tokenizer " + tok.path() + ": " + std::to_string(tok.vocab_size()) +
                " pieces, but the decoder has a vocabulary of " + std::to_string(llm.config().vocab_size));
  c10::InferenceMode guard;
  return Decoding(llm, tok, audio_embeds, prompt, lora_scale, opt).run(on_text);
}

}  // namespace wavllm::decoder

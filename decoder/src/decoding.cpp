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

}  // namespace

// One request's fixed state (rules, prompt, cache) and its greedy/sampled hypothesis as it grows;
// beam search runs whole in beam().
struct Sequence::Impl {
  Impl(const Llama& llm, const Tokenizer& tok, at::Tensor audio, PromptIds prompt, at::Tensor lora_scale,
       GenerationOptions opt, TextCallback on_text)
      : llm_(llm), tok_(tok), audio_(std::move(audio)), prompt_(std::move(prompt)), scale_(std::move(lora_scale)),
        opt_(std::move(opt)), on_text_(std::move(on_text)), stream_(tok, opt_.stop) {
    opt_.validate();
    if (tok.vocab_size() != llm.config().vocab_size)
      throw Error("tokenizer " + tok.path() + ": " + std::to_string(tok.vocab_size()) +
                  " pieces, but the decoder has a vocabulary of " + std::to_string(llm.config().vocab_size));
    const auto& cfg = llm.config();
    if (audio_.dim() != 2 || audio_.size(0) < 1 || audio_.size(1) != cfg.dim)
      throw Error("decoder: audio embeddings must be [T >= 1, " + std::to_string(cfg.dim) + "], got " +
                  std::string(c10::str(audio_.sizes())));
    if (prompt_.left.empty() || prompt_.right.empty())
      throw Error("decoder: the prompt's left and right token ids must not be empty");
    rules_.forced.assign(prompt_.right.begin() + 1, prompt_.right.end());
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
    prompt_len_ = static_cast<int64_t>(prompt_.left.size()) + audio_.size(0) + 1;
    const int64_t table = cfg.max_positions();
    // Step s >= 1 feeds one token at position prompt_len + s - 1.
    if (prompt_len_ + F > table)
      throw ResourceError("decoder: context too long: " + std::to_string(prompt_.left.size()) + " prompt tokens + " +
                  std::to_string(audio_.size(0)) + " audio frames + BOS + " + std::to_string(F) +
                  " instruction tokens need " + std::to_string(prompt_len_ + F) +
                  " positions; the rotary table has " + std::to_string(table) + " (2 x llama.max_seq_len)");
    rules_.eos_step = opt_.max_steps;
    // The last step that may run: its token is chosen but never fed, so the table bounds it like
    // max_new_tokens does (generation ends there without an EOS).
    rules_.last_step = std::min<int64_t>(opt_.max_steps, table - prompt_len_);
    if (opt_.max_new_tokens > 0) rules_.last_step = std::min<int64_t>(rules_.last_step, F + opt_.max_new_tokens - 1);
    if (scale_.numel() != cfg.dim)
      throw Error("decoder: LoRA scale has " + std::to_string(scale_.numel()) + " values, expected " +
                  std::to_string(cfg.dim));
    step_scale_ = scale_.to(llm.device(), llm.dtype()).reshape({cfg.dim});
    if (opt_.num_beams == 1 && opt_.temperature > 0)
      gen_ = at::make_generator<at::CPUGeneratorImpl>(opt_.seed ? *opt_.seed : std::random_device{}());
  }

  // The prompt through the decoder: the first step's logits [beams, vocab].
  at::Tensor prefill() {
    started_ = Clock::now();
    const int64_t capacity = prompt_len_ + rules_.last_step;
    if (llm_.device().is_cpu())
      check_memory_budget(request_bytes(capacity), available_memory_bytes(),
                          "decoding with a KV cache of " + std::to_string(opt_.num_beams) + " beam(s) x " +
                              std::to_string(capacity) + " positions");
    cache_.emplace(llm_.new_cache(opt_.num_beams, capacity));
    const auto prefill = at::cat({llm_.embed(prompt_.left), audio_.to(llm_.device(), llm_.dtype()),
                                  llm_.embed({tok_.bos_id()})});
    at::Tensor logits = checked(llm_.forward(prefill, *cache_, scale_).cpu());
    prefill_seconds_ = seconds_since(started_);
    decode_started_ = Clock::now();
    return logits;
  }

  // Greedy or sampling: steps 1 .. n of the forced prefix in one pass through the decoder (n the
  // forced tokens, or fewer when the step limit comes first). Their inputs, the tokens chosen at
  // steps 0 .. n - 1, are known before any of their logits, and one pass over n positions reads
  // the weights once where n steps read them n times. The same tokens as one step each; the
  // logits differ by the order of float sums only (docs/model.md §6). Ends the prefill's time.
  void feed_forced() {
    const int64_t n = std::min(rules_.free_start(), rules_.last_step);
    if (!done_ && step_ == 1 && n >= 1) {
      const std::vector<int64_t> inputs(rules_.forced.begin(), rules_.forced.begin() + n);
      const at::Tensor logits = checked(llm_.forward_every(llm_.embed(inputs), *cache_, scale_).cpu());  // [1, n, vocab]
      for (int64_t i = 0; i < n && !done_; ++i) choose(logits.select(1, i));
    }
    prefill_seconds_ = seconds_since(started_);
    decode_started_ = Clock::now();
  }

  // Greedy or sampling, one step: the token chosen from logits [1, vocab]; done_ once the
  // hypothesis ends (EOS, a stop string, the step limit).
  void choose(const at::Tensor& logits) {
    Hypothesis& h = best_;
    if (opt_.return_step_logits) {
      step_rows_.push_back(logits);
      h.rows.push_back(0);
    }
    const auto lp = step_logprobs(logits[0], step_, rules_, h.generated, opt_);
    const bool free = step_ >= rules_.free_start() && step_ < rules_.eos_step;
    const int64_t token = gen_ && free ? sample(lp, opt_, *gen_) : lp.argmax().item<int64_t>();
    const double token_lp = lp[token].item<double>();
    h.logprob += token_lp;
    h.tokens.push_back(token);
    next_ = token;
    if (token == rules_.eos) return end();
    if (step_ >= rules_.free_start()) {
      h.generated.push_back(token);
      h.generated_logprobs.push_back(float(token_lp));
      if (on_text_ || !opt_.stop.empty()) {
        const std::string piece = stream_.push(h.generated);
        if (on_text_ && !piece.empty()) on_text_(piece);
        if (stream_.stopped()) return end();
      }
    }
    if (step_ >= rules_.last_step) return end();
    ++step_;
  }

  void end() {
    done_ = true;
    cache_.reset();  // a finished sequence in a long batch holds no KV memory
  }

  Completion finish() {
    const Hypothesis& best = best_;
    Completion res;
    res.decoded_tokens = best.tokens;
    res.generated_ids = best.generated;
    res.generated_logprobs = best.generated_logprobs;
    res.score = normalised(best.logprob, best.tokens.size(), opt_.length_penalty);
    std::string rest;
    res.text = stream_.finish(best.generated, rest);
    if (on_text_ && !rest.empty()) on_text_(rest);
    if (opt_.return_step_logits) {
      std::vector<at::Tensor> rows;
      for (size_t s = 0; s < best.rows.size(); ++s) rows.push_back(step_rows_[s][best.rows[s]]);
      res.step_logits = at::stack(rows);
    }
    res.prefill_seconds = prefill_seconds_;
    res.decode_seconds = seconds_since(decode_started_);
    return res;
  }

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

  // NaN logits would decode to an arbitrary token (argmax of NaN) or an empty answer. Checked in
  // place every step (float32 [rows, vocab] on the CPU): no tensor is made for it per token.
  at::Tensor checked(at::Tensor logits) const {
    const float* p = logits.data_ptr<float>();
    if (!std::all_of(p, p + logits.numel(), [](float v) { return std::isfinite(v); }))
      throw Error("the decoder produced non-finite logits (NaN or infinity) at position " +
                  std::to_string(cache_->length()) + ": its weights or its input embeddings hold NaN or infinite values");
    return logits;
  }

  // fairseq's beam search: 2k candidates per step from all live hypotheses by total log-prob; an
  // EOS among the k best finishes a hypothesis (score normalised by its length); the k best others
  // go on. Ends with k finished hypotheses or at the step limit.
  void beam(at::Tensor logits) {
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
      logits = checked(llm_.forward(llm_.embed(tokens).unsqueeze(1), *cache_, scale_).cpu());
    }
    if (done.empty()) throw Error("decoder: beam search ended without a hypothesis");
    const size_t best = std::max_element(done_scores.begin(), done_scores.end()) - done_scores.begin();
    best_ = std::move(done[best]);
    done_ = true;
  }

  const Llama& llm_;
  const Tokenizer& tok_;
  at::Tensor audio_;
  PromptIds prompt_;
  at::Tensor scale_;
  at::Tensor step_scale_;  // scale_ in the decoder's dtype and device, [dim]: converted once, not per token
  GenerationOptions opt_;
  TextCallback on_text_;
  TextStream stream_;
  Rules rules_;
  int64_t prompt_len_ = 0;
  std::optional<KVCache> cache_;
  std::optional<at::Generator> gen_;
  std::vector<at::Tensor> step_rows_;  // logits [rows, vocab] of every step, when asked
  Hypothesis best_;                    // greedy/sampling: the one hypothesis; beam search: the best
  int64_t step_ = 0;
  int64_t next_ = 0;  // the last token chosen: the next step's input
  bool prefilled_ = false, done_ = false;
  std::string error_;  // why a batched step ended this sequence, if it failed
  Clock::time_point started_, decode_started_;
  double prefill_seconds_ = 0;
};

Sequence::Sequence(const Llama& llm, const Tokenizer& tok, at::Tensor audio_embeds, PromptIds prompt,
                   at::Tensor lora_scale, GenerationOptions opt, TextCallback on_text) {
  if (opt.num_beams != 1) throw ArgumentError("a batched sequence decodes greedily or by sampling (num_beams 1)");
  impl_ = std::make_unique<Impl>(llm, tok, std::move(audio_embeds), std::move(prompt), std::move(lora_scale),
                                 std::move(opt), std::move(on_text));
}
Sequence::~Sequence() = default;
Sequence::Sequence(Sequence&&) noexcept = default;

void Sequence::prefill() {
  c10::InferenceMode guard;
  if (impl_->prefilled_) throw Error("decoder: a sequence is prefilled once");
  impl_->prefilled_ = true;
  impl_->choose(impl_->prefill());
  impl_->feed_forced();
}

bool Sequence::done() const { return impl_->done_; }
void Sequence::stop() { impl_->end(); }
size_t Sequence::generated() const { return impl_->best_.generated.size(); }

Completion Sequence::finish() {
  c10::InferenceMode guard;
  if (!impl_->done_) throw Error("decoder: finish() before the sequence is done");
  if (!impl_->error_.empty()) throw Error(impl_->error_);
  return impl_->finish();
}

void step(const Llama& llm, const std::vector<Sequence*>& batch) {
  c10::InferenceMode guard;
  std::vector<Sequence::Impl*> live;
  for (Sequence* s : batch)
    if (s->impl_->prefilled_ && !s->impl_->done_) live.push_back(s->impl_.get());
  if (live.empty()) return;
  std::vector<int64_t> tokens;
  std::vector<at::Tensor> scales;
  std::vector<KVCache*> caches;
  for (Sequence::Impl* s : live) {
    tokens.push_back(s->next_);
    scales.push_back(s->step_scale_);
    caches.push_back(&*s->cache_);
  }
  const at::Tensor logits = llm.step(llm.embed(tokens).unsqueeze(1), caches, at::stack(scales)).cpu();
  for (size_t b = 0; b < live.size(); ++b) {
    // A row that fails (non-finite logits) ends alone; finish() reports it. One row's own copy:
    // a kept step row must not hold the whole batch's logits alive.
    try {
      live[b]->choose(live[b]->checked(logits.narrow(0, int64_t(b), 1).clone()));
    } catch (const Error& e) {
      live[b]->error_ = e.what();
      live[b]->end();
    }
  }
}

Completion complete(const Llama& llm, const Tokenizer& tok, const at::Tensor& audio_embeds,
                    const PromptIds& prompt, const at::Tensor& lora_scale, const GenerationOptions& opt,
                    const TextCallback& on_text) {
  c10::InferenceMode guard;
  if (opt.num_beams > 1) {
    Sequence::Impl beams(llm, tok, audio_embeds, prompt, lora_scale, opt, on_text);
    beams.beam(beams.prefill());
    return beams.finish();
  }
  // The batch scheduler's path with a batch of one: the same tokens whether alone or batched.
  Sequence s(llm, tok, audio_embeds, prompt, lora_scale, opt, on_text);
  s.prefill();
  while (!s.done()) step(llm, {&s});
  return s.finish();
}

}  // namespace wavllm::decoder

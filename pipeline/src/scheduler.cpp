#include "wavllm/pipeline/scheduler.h"

#include <malloc.h>

#include <algorithm>

namespace wavllm {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

void SchedulerOptions::validate() const {
  if (max_batch < 1 || max_batch > kMaxBatch)
    throw ArgumentError("max batch must be 1 to " + std::to_string(kMaxBatch) + ", got " + std::to_string(max_batch));
  if (max_queue < 0 || max_queue > kMaxQueue)
    throw ArgumentError("max queue must be 0 to " + std::to_string(kMaxQueue) + ", got " + std::to_string(max_queue));
  if (encoder_batch < 1 || encoder_batch > max_batch)
    throw ArgumentError("encoder batch must be 1 to the max batch (" + std::to_string(max_batch) + "), got " +
                        std::to_string(encoder_batch));
}

bool Ticket::next_text(std::string& piece, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !text_.empty() || ended_; });
  piece += text_;
  text_.clear();
  return !ended_;
}

GenerationResult Ticket::wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return ended_; });
  if (error_) std::rethrow_exception(error_);
  return *result_;
}

bool Ticket::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return ended_; });
}

void Ticket::cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
}

bool Ticket::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

double Ticket::first_text_seconds() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_text_seconds_;
}

void Ticket::add_text(const std::string& piece) {
  std::lock_guard<std::mutex> lock(mu_);
  if (first_text_seconds_ == 0) first_text_seconds_ = seconds_since(submitted_);
  text_ += piece;
  cv_.notify_all();
}

void Ticket::finish(GenerationResult r) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ended_) return;  // a request ends once
  result_ = std::move(r);
  ended_ = true;
  cv_.notify_all();
}

void Ticket::fail(std::exception_ptr e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ended_) return;
  error_ = std::move(e);
  ended_ = true;
  cv_.notify_all();
}

Scheduler::Scheduler(std::shared_ptr<const Model> model, const SchedulerOptions& opt)
    : model_(std::move(model)), opt_(opt) {
  opt_.validate();
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { drain(); }

std::shared_ptr<Ticket> Scheduler::submit(Job job) {
  job.options.validate();
  if (job.options.num_beams != 1)
    throw ArgumentError("the batch scheduler decodes greedily or by sampling: num_beams must be 1");
  std::lock_guard<std::mutex> lock(mu_);
  drop_cancelled_waiting();
  // Free batch rows take requests at the next step: only those beyond them wait in the queue.
  const size_t free_rows = size_t(opt_.max_batch) - std::min(size_t(opt_.max_batch), running_count_);
  if (stopping_ || queue_.size() >= free_rows + size_t(opt_.max_queue)) return nullptr;
  auto ticket = std::make_shared<Ticket>();
  queue_.push_back({std::move(job), ticket});
  cv_.notify_all();
  return ticket;
}

void Scheduler::drop_cancelled_waiting() {
  queue_.erase(std::remove_if(queue_.begin(), queue_.end(),
                              [&](const Waiting& w) {
                                if (!w.ticket->cancelled()) return false;
                                w.ticket->fail(std::make_exception_ptr(Cancelled("the request was cancelled")));
                                ++stats_.cancelled;
                                return true;
                              }),
               queue_.end());
}

void Scheduler::drain() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

bool Scheduler::draining() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  SchedulerStats s = stats_;
  s.queued = queue_.size();
  s.running = running_count_;
  return s;
}

void Scheduler::loop() {
  for (;;) {
    std::vector<Waiting> admitted;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Cancelled requests leave the queue at every step, not only at its front; dropping them
      // inside the predicate keeps the loop waiting when that empties the queue.
      cv_.wait(lock, [&] {
        drop_cancelled_waiting();
        return !queue_.empty() || !running_.empty() || stopping_;
      });
      if (queue_.empty() && running_.empty()) return;  // stopping, and nothing left
      while (running_.size() + admitted.size() < size_t(opt_.max_batch) && !queue_.empty()) {
        admitted.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      running_count_ = running_.size() + admitted.size();  // their rows are taken from now on
    }
    const auto t0 = std::chrono::steady_clock::now();
    if (!admitted.empty()) admit(admitted);
    const double admit_seconds = seconds_since(t0);
    std::vector<RunningRequest*> rows;
    for (const Running& r : running_)
      if (!r.ticket->cancelled() && !r.request->done()) rows.push_back(r.request.get());
    const auto t1 = std::chrono::steady_clock::now();
    if (!rows.empty()) {
      try {
        model_->step(rows);
      } catch (...) {  // not one row's failure (those end their row alone): the whole batch's
        for (Running& r : running_) {
          r.ticket->fail(std::current_exception());
          r.request->cancel();
        }
      }
    }
    const double step_seconds = seconds_since(t1);
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.admit_seconds += admit_seconds;
      if (!rows.empty()) {
        ++stats_.steps;
        stats_.step_rows += rows.size();
        stats_.step_seconds += step_seconds;
      }
    }
    retire();
  }
}

void Scheduler::admit(std::vector<Waiting>& admitted) {
  std::vector<Waiting> live;
  for (Waiting& w : admitted) {
    if (w.ticket->cancelled()) {
      w.ticket->fail(std::make_exception_ptr(Cancelled("the request was cancelled")));
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.cancelled;
    } else {
      live.push_back(std::move(w));
    }
  }
  for (size_t first = 0; first < live.size(); first += size_t(opt_.encoder_batch)) {
    const size_t last = std::min(live.size(), first + size_t(opt_.encoder_batch));
    std::vector<WhisperEncoded> whisper;
    if (last - first > 1) {
      std::vector<std::vector<float>> pieces;
      for (size_t i = first; i < last; ++i) pieces.push_back(live[i].job.samples);
      try {
        whisper = model_->encode_whisper(pieces);
      } catch (...) {
        whisper.clear();  // each request then meets its own error (or none) alone
      }
    }
    for (size_t i = first; i < last; ++i) {
      Waiting& w = live[i];
      const std::shared_ptr<Ticket> ticket = w.ticket;
      try {
        auto request = model_->start(w.job.samples, whisper.empty() ? nullptr : &whisper[i - first],
                                     w.job.instruction, w.job.options,
                                     [ticket](const std::string& piece) { ticket->add_text(piece); });
        running_.push_back({ticket, std::move(request)});
      } catch (...) {
        ticket->fail(std::current_exception());
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.failed;
      }
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  running_count_ = running_.size();
}

void Scheduler::retire() {
  // The rows leave the batch (and its count) before their tickets end: a submitter woken by its
  // answer may submit at once and must find the row free.
  std::vector<Running> ended;
  for (Running& r : running_) {
    if (r.ticket->cancelled() && !r.request->done()) r.request->cancel();
    if (r.request->done()) ended.push_back(std::move(r));
  }
  if (ended.empty()) return;
  running_.erase(std::remove_if(running_.begin(), running_.end(), [](const Running& r) { return !r.request; }),
                 running_.end());
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_count_ = running_.size();
  }
  // Each request is counted before its ticket is resolved: a client that reads the metrics right
  // after its answer finds its request in them.
  auto count = [this](uint64_t SchedulerStats::*outcome, uint64_t tokens) {
    std::lock_guard<std::mutex> lock(mu_);
    ++(stats_.*outcome);
    stats_.tokens += tokens;
  };
  for (Running& r : ended) {
    const uint64_t tokens = r.request->generated_tokens();
    if (r.ticket->cancelled()) {
      count(&SchedulerStats::cancelled, tokens);
      r.ticket->fail(std::make_exception_ptr(Cancelled("the request was cancelled")));
      continue;
    }
    try {
      GenerationResult result = model_->finish(*r.request);
      count(&SchedulerStats::completed, tokens);
      r.ticket->finish(std::move(result));
    } catch (...) {
      count(&SchedulerStats::failed, tokens);
      r.ticket->fail(std::current_exception());
    }
  }
  ended.clear();
  // Each request's encoder buffers are freed in glibc's heap; hand them back between requests
  // (as SegmentedRun does per piece) so a long-running server does not keep its peak.
  malloc_trim(0);
}

}  // namespace wavllm

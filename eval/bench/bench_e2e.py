#!/usr/bin/python3
"""End-to-end benchmark: one audio file + one instruction through the engine (Python binding)
and through the eager PyTorch reference (eval/reference) on the same model directory, each in
its own process (so peak RSS is its own), one after the other, same thread count.

    PYTHONPATH=build/python /usr/bin/python3 eval/bench/bench_e2e.py --model DIR \
        [--audio tests/fixtures/audio/museum.wav] [--prompt TEXT] [--max-new-tokens 32] \
        [--runs 3] [--threads N] [--side both|engine|reference] [--first engine|reference] [--json OUT.json]

Random-weight model directories of any size come from the CLI, e.g.
    build/bin/wavllm make-random-model --config eval/bench/configs/1b.json \
        --tokenizer ../shared/data/tokenizer.model --out /tmp/wavllm-1b

Per stage (audio decoding, log-mel front end, Whisper, WavLM, adapters + fusion, prompt adapter,
decoder prefill, decode) it prints seconds (median of --runs after one warm-up run) on both
sides and the engine/PyTorch time ratio (< 1: the engine is faster), decode tokens/s (decoder
steps after the prefill per second: PyTorch steps the forced instruction tokens there, the engine
runs them in its prefill), the real-time factor (all stages / audio seconds), the
engine's time to its first piece of text (audio decoding included: what a streaming caller waits
before anything shows), load time and peak RSS. The engine caches the prompt adapter's scale per
instruction, so the prompt adapter row of both sides is the warm-up (first) run's. Both sides decode greedily;
the script reports whether they chose the same tokens (same weights: they must).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

EVAL = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(EVAL)
STAGES = ("audio", "frontend", "whisper", "wavlm", "adapters", "prompt_adapter", "prefill", "decode")
# The reference's timed steps, summed into the engine's stage names.
REFERENCE_STAGES = {"log_mel": "frontend", "whisper_encoder": "whisper", "wavlm_encoder": "wavlm",
                    "wavlm_weighted": "wavlm", "whisper_branch": "adapters", "wavlm_branch": "adapters",
                    "fusion": "adapters", "prompt_scale": "prompt_adapter", "decode": "decode"}
DEFAULT_AUDIO = os.path.join(ROOT, "tests", "fixtures", "audio", "museum.wav")
DEFAULT_PROMPT = "Where will the speakers go first? A. The museum; B. A cafe; C. The station."


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def summarize(runs, load_seconds, audio_seconds):
    """Median stage times of the runs after the first; prompt_adapter from the first."""
    warm = runs[1:] or runs
    stages = {s: statistics.median(r["timings"][s] for r in warm) for s in STAGES}
    stages["prompt_adapter"] = runs[0]["timings"]["prompt_adapter"]
    steps = statistics.median(r["decode_steps"] for r in warm)
    first_text = [r["first_text"] for r in warm if r.get("first_text") is not None]
    return {"stages": stages, "total": sum(stages.values()),
            "rtf": sum(stages.values()) / audio_seconds,
            "decode_tokens_per_second": steps / stages["decode"] if stages["decode"] else None,
            "first_text_seconds": statistics.median(first_text) if first_text else None,
            "generated": warm[-1]["generated"], "decoded": warm[-1]["decoded"],
            "load_seconds": load_seconds, "peak_rss_mb": peak_rss_mb(), "runs": len(warm)}


def run_engine(args, samples):
    import wavllm
    t0 = time.perf_counter()
    model = wavllm.Model(args.model, threads=args.threads)
    load = time.perf_counter() - t0
    runs = []
    for _ in range(args.runs + 1):
        printed = []  # when the first piece of text came (what a streaming caller shows first)
        start = time.perf_counter()
        r = model.generate(samples, args.prompt, max_new_tokens=args.max_new_tokens,
                           on_text=lambda piece: printed or printed.append(time.perf_counter()))
        timings = dict(r.timings, audio=args.audio_decode_seconds)
        # The engine runs the forced instruction tokens in its prefill: its decode stage
        # chooses the generated tokens after the first (an ending EOS step is not counted).
        runs.append({"timings": timings, "decode_steps": max(len(r.token_ids) - 1, 0),
                     "generated": r.token_ids, "decoded": r.decoded_tokens,
                     "first_text": args.audio_decode_seconds + printed[0] - start if printed else None})
    return summarize(runs, load, samples.size / 16000)


def run_reference(args, samples):
    import torch
    sys.path.insert(0, EVAL)
    from reference.model import Reference
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ref = Reference.load(args.model)
    load = time.perf_counter() - t0

    # The reference times decoding as one step; its first forward of a decode is the prefill.
    forward = ref._forward
    prefill = []

    def timed_forward(x, start, caches, scale):
        t = time.perf_counter()
        out = forward(x, start, caches, scale)
        if start == 0:
            prefill.append(time.perf_counter() - t)
        return out
    ref._forward = timed_forward

    runs = []
    with torch.inference_mode():
        for _ in range(args.runs + 1):
            prefill.clear()
            res = ref.run(samples, args.prompt, max_new_tokens=args.max_new_tokens)
            timings = dict.fromkeys(STAGES, 0.0)
            for step, seconds in res.timings.items():
                timings[REFERENCE_STAGES[step]] += seconds
            timings["prefill"] = prefill[0]
            timings["decode"] -= prefill[0]
            timings["audio"] = args.audio_decode_seconds
            runs.append({"timings": timings, "decode_steps": len(res.decoded_tokens) - 1,
                         "generated": res.generated_ids, "decoded": res.decoded_tokens})
    return summarize(runs, load, samples.size / 16000)


def child(args):
    import numpy as np
    samples = np.load(args.samples)
    result = (run_engine if args.side == "engine" else run_reference)(args, samples)
    print("RESULT " + json.dumps(result))


def fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def table(results, audio_seconds):
    sides = [s for s in ("engine", "reference") if s in results]
    both = len(sides) == 2
    rows = [(stage, ".3f", {s: results[s]["stages"][stage] for s in sides}) for stage in STAGES]
    rows.append(("total", ".3f", {s: results[s]["total"] for s in sides}))
    for label, key, spec in (("real-time factor", "rtf", ".3f"), ("first text s", "first_text_seconds", ".3f"),
                             ("decode tokens/s", "decode_tokens_per_second", ".2f"),
                             ("load s", "load_seconds", ".1f"), ("peak RSS MB", "peak_rss_mb", ".0f")):
        rows.append((label, spec, {s: results[s][key] for s in sides}))
    lines = ["| | " + " | ".join(f"{s}" for s in sides) + (" | engine/PyTorch |" if both else " |"),
             "|---|" + "---|" * (len(sides) + both)]
    for label, spec, vals in rows:
        line = f"| {label} | " + " | ".join(fmt(vals[s], spec) for s in sides) + " |"
        if both:
            a, b = vals["engine"], vals["reference"]
            line += f" {a / b:.2f} |" if a is not None and b else " - |"
        lines.append(line)
    lines.append(f"\naudio {audio_seconds:.2f} s; seconds are the median of {results[sides[0]]['runs']} "
                 "runs after a warm-up (prompt adapter: the warm-up run's)")
    if both:
        eng, ref = results["engine"], results["reference"]
        lines.append(f"same tokens on both sides: {'yes' if eng['decoded'] == ref['decoded'] else 'NO'} "
                     f"({len(eng['generated'])} generated by the engine, {len(ref['generated'])} by PyTorch)")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--audio", default=DEFAULT_AUDIO)
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up run")
    p.add_argument("--threads", type=int, help="intra-op threads on both sides (default: every available core)")
    p.add_argument("--side", choices=("both", "engine", "reference"), default="both")
    p.add_argument("--first", choices=("engine", "reference"), default="engine",
                   help="with --side both: which side runs first (swap to check that a changing "
                        "machine load does not favour one)")
    p.add_argument("--json", help="write the results to this new file")
    p.add_argument("--samples", help=argparse.SUPPRESS)  # child processes: the decoded audio (.npy)
    p.add_argument("--audio-decode-seconds", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.json and os.path.lexists(args.json):  # checked before minutes of benchmarking
        p.error(f"--json {args.json} already exists; name a new file")
    # Explicit on both sides: Debian's torch starts with one thread, the engine with every core.
    args.threads = args.threads or len(os.sched_getaffinity(0))
    if args.samples:
        child(args)
        return 0

    import numpy as np
    import wavllm
    t0 = time.perf_counter()
    samples = wavllm.load_audio(args.audio)
    decode_seconds = time.perf_counter() - t0  # the same on both sides: decoded once, here
    sides = ([args.first, "reference" if args.first == "engine" else "engine"] if args.side == "both"
             else [args.side])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        npy = os.path.join(tmp, "samples.npy")
        np.save(npy, samples)
        for side in sides:
            cmd = [sys.executable, os.path.abspath(__file__), "--model", args.model, "--prompt", args.prompt,
                   "--max-new-tokens", str(args.max_new_tokens), "--runs", str(args.runs), "--side", side,
                   "--samples", npy, "--audio-decode-seconds", repr(decode_seconds), "--threads", str(args.threads)]
            print(f"running the {side} ...", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                print(f"bench_e2e: the {side} run failed (exit {proc.returncode})", file=sys.stderr)
                return 1
            results[side] = json.loads(lines[-1][len("RESULT "):])
    out = table(results, samples.size / 16000)
    print(f"model {args.model}, audio {args.audio}, prompt {args.prompt!r}, max_new_tokens "
          f"{args.max_new_tokens}, threads {args.threads}\n")
    print(out)
    if args.json:
        with open(args.json, "x") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if k not in ("samples", "audio_decode_seconds")},
                       "audio_seconds": samples.size / 16000, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

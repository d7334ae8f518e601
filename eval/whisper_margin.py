#!/usr/bin/python3
"""What the opt-in --whisper-margin (Whisper encodes the audio plus S seconds of its 30-s window,
not the whole padded window) costs in fidelity, on every fixture case with the demo model:

    eval/whisper_margin.py [--model models/demo] [--margins 0 1 2 5 10]

Per case and margin: the Whisper output's largest difference from the full window's (relative
to the full output's largest value), the step logits' largest difference and their smallest
cosine similarity, and whether every generated greedy token is the same (the first that differs
if not).
The demo model has random weights: a harsh case (flat logits), see eval/RESULTS.md.
"""
import argparse
import json
import os
import sys

import numpy as np

EVAL = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(EVAL)
sys.path.insert(0, EVAL)
from wavllm_eval.engine import wavllm  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def run(model, audio, prompt):
    r = model.generate(audio, prompt, temperature=0, max_new_tokens=10, return_step_logits=True)
    return model.whisper_encoder(audio), r


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=os.path.join(ROOT, "models", "demo"))
    p.add_argument("--margins", type=float, nargs="+", default=[0, 1, 2, 5, 10])
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    cases = json.load(open(os.path.join(FIXTURES, "cases.json")))
    full = wavllm.Model(args.model, threads=args.threads)
    models = {m: wavllm.Model(args.model, threads=args.threads, whisper_margin=m) for m in args.margins}
    print("| case | audio (s) | margin (s) | Whisper output max diff / max | step logits max diff | min cosine | greedy tokens |")
    print("|---|---|---|---|---|---|---|")
    for name, case in cases.items():
        audio = wavllm.load_audio(os.path.join(FIXTURES, "audio", case["audio"]))
        prompt = case["prompt"]
        ref_whisper, ref = run(full, audio, prompt)
        scale = max(float(np.abs(w).max()) for w in ref_whisper)
        for margin, model in models.items():
            whisper, r = run(model, audio, prompt)
            wdiff = max(float(np.abs(a - b).max()) for a, b in zip(whisper, ref_whisper)) / scale
            steps = min(len(r.step_logits), len(ref.step_logits))
            a, b = r.step_logits[:steps], ref.step_logits[:steps]
            cos = float(np.min(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))
            got, want = list(r.token_ids), list(ref.token_ids)
            first = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
            verdict = "same" if got == want else f"differ from generated token {first}"
            print(f"| {name} | {audio.size / 16000:.1f} | {margin:g} | {wdiff:.2e} | {float(np.abs(a - b).max()):.3f} | "
                  f"{cos:.5f} | {verdict} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""How well the voice detector and the piece planner find speech, on synthetic recordings with
known timing (eval/wavllm_eval/synthetic.py: espeak-ng sentences, pauses of 0.3 to 3 s, a 60-s
silence, 44.1 kHz stereo with noise), for each WebRTC aggressiveness:

    eval/vad_accuracy.py [--seconds 600] [--noise 0.003 0.01] [--seeds 0 1]

Frame precision and recall: 10-ms frames marked speech against the sentences' spans. Pieces: how
many, the largest distance of a piece's start (end) from the nearest sentence start (end), pieces
starting inside the long silence, sentences not wholly inside one piece, the longest piece.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

EVAL = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, EVAL)
from wavllm_eval.engine import wavllm  # noqa: E402
from wavllm_eval import synthetic  # noqa: E402


def measure(samples, sentences, silence, mode, max_segment):
    frames = wavllm.voice_activity(samples, mode)
    truth = np.zeros(frames.size, bool)
    for start, end, _ in sentences:
        truth[int(start * 100):int(end * 100)] = True
    pieces = wavllm.speech_pieces(samples, max_segment, mode)
    starts = np.array([s for s, _, _ in sentences])
    ends = np.array([e for _, e, _ in sentences])
    return {
        "precision": float((frames & truth).sum() / max(1, frames.sum())),
        "recall": float((frames & truth).sum() / truth.sum()),
        "pieces": len(pieces),
        "start_dev": max(float(np.min(np.abs(starts - s))) for s, _ in pieces),
        "end_dev": max(float(np.min(np.abs(ends - e))) for _, e in pieces),
        "in_silence": sum(silence[0] + 0.3 < s < silence[1] - 0.3 for s, _ in pieces),
        "uncovered": sum(not any(s <= a and b <= e for s, e in pieces) for a, b, _ in sentences),
        "longest": max(e - s for s, e in pieces),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--noise", type=float, nargs="+", default=[0.003, 0.01], help="noise standard deviations")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--max-segment", type=float, default=30)
    args = p.parse_args(argv)
    missing = synthetic.missing_tools()
    if missing:
        print(f"vad_accuracy: needs {', '.join(missing)} (apt-get install espeak-ng sox)", file=sys.stderr)
        return 2
    print("| noise | seed | aggressiveness | frame precision | frame recall | pieces | max start dev (s) | "
          "max end dev (s) | starts in silence | sentences cut | longest (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for noise in args.noise:
            for seed in args.seeds:
                path, sentences, silence = synthetic.recording(tmp, args.seconds, seed=seed, noise=noise)
                samples = wavllm.load_audio(path)
                for mode in range(4):
                    m = measure(samples, sentences, silence, mode, args.max_segment)
                    print(f"| {noise} | {seed} | {mode} | {m['precision']:.3f} | {m['recall']:.3f} | {m['pieces']} | "
                          f"{m['start_dev']:.2f} | {m['end_dev']:.2f} | {m['in_silence']} | {m['uncovered']} | "
                          f"{m['longest']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

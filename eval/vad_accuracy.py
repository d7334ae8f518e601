#!/usr/bin/python3
"""How well the voice detector and the piece planner find speech, on synthetic recordings with
known timing (eval/wavllm_eval/synthetic.py: espeak-ng sentences, pauses of 0.3 to 3 s, a 60-s
silence, 44.1 kHz stereo with noise), for each WebRTC aggressiveness and, with --silero, for
Silero VAD v5 at each --silero-threshold through the same piece planner:

    eval/vad_accuracy.py [--seconds 600] [--noise 0.003 0.01] [--seeds 0 1] [--silero silero_vad.onnx]

Frame precision, recall and F1: 10-ms frames marked speech against the sentences' spans. Pieces:
how many, the largest distance of a piece's start (end) from the nearest sentence start (end),
pieces starting inside the long silence, sentences not wholly inside one piece, the longest piece.
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


def measure(samples, sentences, silence, frames, pieces):
    truth = np.zeros(frames.size, bool)
    for start, end, _ in sentences:
        truth[int(start * 100):int(end * 100)] = True
    starts = np.array([s for s, _, _ in sentences])
    ends = np.array([e for _, e, _ in sentences])
    precision = float((frames & truth).sum() / max(1, frames.sum()))
    recall = float((frames & truth).sum() / truth.sum())
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(1e-9, precision + recall),
        "pieces": len(pieces),
        "start_dev": max(float(np.min(np.abs(starts - s))) for s, _ in pieces),
        "end_dev": max(float(np.min(np.abs(ends - e))) for _, e in pieces),
        "in_silence": sum(silence[0] + 0.3 < s < silence[1] - 0.3 for s, _ in pieces),
        "uncovered": sum(not any(s <= a and b <= e for s, e in pieces) for a, b, _ in sentences),
        "longest": max(e - s for s, e in pieces),
    }


def detectors(samples, max_segment, silero_weights, thresholds):
    """(name, frames, pieces) for each detector measured."""
    for mode in range(4):
        yield (f"webrtc {mode}", wavllm.voice_activity(samples, mode), wavllm.speech_pieces(samples, max_segment, mode))
    if silero_weights is not None:
        from wavllm_eval import silero
        probs = silero.probabilities(silero_weights, samples)
        for threshold in thresholds:
            frames = silero.voice_frames(probs, samples.size // silero.FRAME, threshold)
            yield (f"silero {threshold}", frames, wavllm.speech_pieces(samples, max_segment, frames=frames))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--noise", type=float, nargs="+", default=[0.003, 0.01], help="noise standard deviations")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--max-segment", type=float, default=30)
    p.add_argument("--silero", metavar="ONNX", help="Silero VAD v5's silero_vad.onnx: measure it too")
    p.add_argument("--silero-threshold", type=float, nargs="+", default=[0.5, 0.35, 0.2],
                   help="speech probability thresholds for Silero (0.5 is its default)")
    args = p.parse_args(argv)
    missing = synthetic.missing_tools()
    if missing:
        print(f"vad_accuracy: needs {', '.join(missing)} (apt-get install espeak-ng sox)", file=sys.stderr)
        return 2
    silero_weights = None
    if args.silero:
        from wavllm_eval import silero
        silero_weights = silero.load_weights(args.silero)
    print("| noise | seed | detector | frame precision | frame recall | F1 | pieces | max start dev (s) | "
          "max end dev (s) | starts in silence | sentences cut | longest (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for noise in args.noise:
            for seed in args.seeds:
                path, sentences, silence = synthetic.recording(tmp, args.seconds, seed=seed, noise=noise)
                samples = wavllm.load_audio(path)
                for name, frames, pieces in detectors(samples, args.max_segment, silero_weights, args.silero_threshold):
                    m = measure(samples, sentences, silence, frames, pieces)
                    print(f"| {noise} | {seed} | {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
                          f"{m['pieces']} | {m['start_dev']:.2f} | {m['end_dev']:.2f} | {m['in_silence']} | "
                          f"{m['uncovered']} | {m['longest']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

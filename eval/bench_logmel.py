#!/usr/bin/python3
"""The Whisper log-mel of eval/bench_logmel.cpp the PyTorch way (HF WhisperFeatureExtractor's
torch path: torch.stft with a periodic Hann window, centred reflect-padded frames, Slaney mel
filterbank, log10, clamp at max - 8, (x + 4) / 4), on the same length of audio. First checks
that this is the reference computation (fixture story.wav part 0 against frontend.safetensors),
then prints "RESULT <impl> <seconds per call>" (best of --repeat) with 1 thread and with all.

Usage: /usr/bin/python3 eval/bench_logmel.py [--seconds S] [--repeat R]
"""
import argparse
import json
import os
import struct
import time
import wave

import numpy as np
import torch

N_FFT, HOP, PART = 400, 160, 480000
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def slaney_mel_filters(n_mels=80, sr=16000):
    log_step = np.log(6.4) / 27.0
    to_mel = lambda f: np.where(f < 1000, 3 * f / 200, 15 + np.log(np.maximum(f, 1e-9) / 1000) / log_step)
    to_hz = lambda m: np.where(m < 15, 200 * m / 3, 1000 * np.exp(log_step * (m - 15)))
    fft_freqs = np.linspace(0, sr / 2, N_FFT // 2 + 1)
    edges = to_hz(np.linspace(to_mel(0.0), to_mel(sr / 2), n_mels + 2))
    slopes = edges[None, :] - fft_freqs[:, None]
    widths = np.diff(edges)
    tri = np.maximum(0, np.minimum(-slopes[:, :-2] / widths[:-1], slopes[:, 2:] / widths[1:]))
    return torch.from_numpy((tri * (2.0 / (edges[2:] - edges[:-2]))).T.astype(np.float32))  # [n_mels, 201]


FILTERS = slaney_mel_filters()
WINDOW = torch.hann_window(N_FFT)  # periodic


def log_mel(samples):
    """[parts, 80, 3000] for a 1-D float32 tensor, 30-s parts zero-padded like the reference."""
    out = []
    for begin in range(0, len(samples), PART):
        part = torch.nn.functional.pad(samples[begin:begin + PART], (0, PART - len(samples[begin:begin + PART])))
        stft = torch.stft(part, N_FFT, HOP, window=WINDOW, center=True, pad_mode="reflect", return_complex=True)
        power = stft[..., :-1].abs() ** 2
        log_spec = torch.clamp(FILTERS @ power, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        out.append((log_spec + 4.0) / 4.0)
    return torch.stack(out)


def read_fixture_tensor(name):
    with open(os.path.join(FIXTURES, "frontend.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        info = json.loads(f.read(n))[name]
        begin, end = info["data_offsets"]
        f.seek(8 + n + begin)
        return np.frombuffer(f.read(end - begin), dtype=np.float32).reshape(info["shape"])


def check_against_fixture():
    with wave.open(os.path.join(FIXTURES, "audio", "story.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    got = log_mel(torch.from_numpy(pcm.astype(np.float32) / 32768.0))[0].numpy()
    diff = np.abs(got - read_fixture_tensor("story.part0.logmel")).max()
    print(f"torch.stft log-mel vs reference fixture (story part 0): max abs diff {diff:.2e}")


def best_seconds(fn, repeat):
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    check_against_fixture()
    samples = (torch.randn(int(args.seconds * 16000)) * 0.1).float()
    all_threads = torch.get_num_threads()
    with torch.inference_mode():
        for threads in sorted({1, all_threads}):
            torch.set_num_threads(threads)
            print(f"RESULT torch.stft-{threads}-thread {best_seconds(lambda: log_mel(samples), args.repeat):.6f}",
                  flush=True)


if __name__ == "__main__":
    main()

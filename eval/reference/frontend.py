"""Audio front end of the reference: 16 kHz WAV reading and Whisper's log-mel (docs/model.md §1-§2).

The log-mel follows HF WhisperFeatureExtractor: periodic Hann 400, hop 160, centred frames
with reflect padding, power spectrum, 80 Slaney mel filters (0-8000 Hz, area-normalised),
log10(max(1e-10, .)), last frame dropped, clamp at (max - 8), (x + 4) / 4. It is computed in
float64 and returned as float32.
"""
import math
import wave

import numpy as np
import torch

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
PART_SAMPLES = 30 * SAMPLE_RATE  # one Whisper window: 480000 samples, 3000 frames


def read_wav16k(path):
    """float32 mono samples of a 16 kHz PCM WAV (8/16/32-bit), channels averaged.

    Other rates need a resampler; the reference does not imitate SoX: feed the fixtures'
    `.wave16k` waveforms (or the engine's wavllm.load_audio output) instead."""
    with wave.open(str(path), "rb") as w:
        rate, channels, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        raw = w.readframes(n)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{path}: {rate} Hz; the reference reads 16 kHz WAV only")
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width in (2, 4):
        x = np.frombuffer(raw, f"<i{width}").astype(np.float32) / float(2 ** (8 * width - 1))
    else:
        raise ValueError(f"{path}: {8 * width}-bit samples are not supported")
    return x.reshape(-1, channels).mean(axis=1, dtype=np.float32)


def _hz_to_mel(f):  # Slaney: linear below 1 kHz, logarithmic above
    f = np.asarray(f, dtype=np.float64)
    logstep = 27.0 / math.log(6.4)
    return np.where(f < 1000.0, 3.0 * f / 200.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) * logstep)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    logstep = math.log(6.4) / 27.0
    return np.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * np.exp(logstep * (m - 15.0)))


def mel_filters(n_mels=80, n_fft=N_FFT, sr=SAMPLE_RATE, fmax=8000.0):
    """[n_fft // 2 + 1, n_mels] Slaney-scale triangular filters with Slaney area normalisation."""
    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    slopes = edges[None, :] - fft_freqs[:, None]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    return filters * (2.0 / (edges[2:n_mels + 2] - edges[:n_mels]))


def split_parts(samples):
    """Consecutive 30-s parts (the last one shorter): the Whisper branch's input windows."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1 or samples.size == 0:
        raise ValueError("expected a non-empty 1-D waveform")
    return [samples[i:i + PART_SAMPLES] for i in range(0, samples.size, PART_SAMPLES)]


def log_mel(samples, n_mels=80):
    """(np.float32 [parts, n_mels, 3000], np.int64 [parts] valid frames) of a 16 kHz waveform."""
    filters = torch.from_numpy(mel_filters(n_mels))
    window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
    mels, frames = [], []
    for part in split_parts(samples):
        x = torch.zeros(PART_SAMPLES, dtype=torch.float64)
        x[:part.size] = torch.from_numpy(part.astype(np.float64))
        spec = torch.stft(x, N_FFT, HOP, window=window, center=True, pad_mode="reflect",
                          return_complex=True)
        power = spec.abs() ** 2
        mel = filters.T @ power[:, :-1]
        logm = torch.log10(torch.clamp(mel, min=1e-10))
        logm = torch.maximum(logm, logm.max() - 8.0)
        mels.append(((logm + 4.0) / 4.0).float().numpy())
        frames.append(math.ceil(part.size / HOP))
    return np.stack(mels), np.array(frames, dtype=np.int64)

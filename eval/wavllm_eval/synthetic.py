"""Synthetic recordings with known text and known timing, made at run time with Debian's
espeak-ng and sox (nothing recorded is shipped): sentences separated by pauses, an optional long
silence, mild noise, any rate and channel count. The tests of long recordings and the voice
activity measurement (eval/vad_accuracy.py) use them.
"""
import os
import random
import shutil
import subprocess
import wave

import numpy as np

TOOLS = ("espeak-ng", "sox")
_WORDS = ("the river market morning teacher garden window station yellow quiet people music letter "
          "mountain summer winter kitchen doctor answer question village airport careful simple "
          "history evening journey picture student bicycle library weather holiday country").split()
_VERBS = "opened carried painted visited followed answered watched repaired described remembered".split()


def missing_tools():
    """The tools a synthetic recording needs that this machine lacks."""
    return [t for t in TOOLS if shutil.which(t) is None]


def sentence(rng):
    """A plain sentence of 6 to 12 words."""
    words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 7))]
    return (f"The {rng.choice(_WORDS)} {rng.choice(_VERBS)} " + " ".join(words) + ".").capitalize()


def _speak(text, path):
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(path), text], check=True,
                   capture_output=True)
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    # The spoken part: espeak pads a little silence; the truth is where the voice is.
    loud = np.flatnonzero(np.abs(samples) > 0.003)  # soft onsets ("th") count: -50 dBFS
    return samples[loud[0]:loud[-1] + 1], rate


def recording(out_dir, seconds=600.0, seed=0, rate=44100, channels=2, noise=0.003, long_silence=60.0,
              pause=(0.3, 3.0)):
    """Writes out_dir/recording.wav and returns (path, sentences, silence): sentences as
    [(start, end, text)] in seconds, silence as (start, end) of the long silence (None when 0).
    The long silence starts near the middle; pauses between sentences are uniform in `pause`."""
    rng = random.Random(seed)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, "sentence.wav")
    pieces, sentences, silence = [], [], None
    t, voice_rate = 0.0, None
    speech_budget = seconds - long_silence
    while t < speech_budget:
        if silence is None and long_silence > 0 and t >= speech_budget / 2:
            silence = (t, t + long_silence)
            pieces.append(np.zeros(int(long_silence * voice_rate), np.float32))
            t += long_silence
            speech_budget += long_silence
            continue
        text = sentence(rng)
        samples, voice_rate = _speak(text, tmp)
        gap = rng.uniform(*pause)
        if t + len(samples) / voice_rate + gap > seconds:
            break
        sentences.append((t, t + len(samples) / voice_rate, text))
        pieces += [samples, np.zeros(int(gap * voice_rate), np.float32)]
        t += len(samples) / voice_rate + len(pieces[-1]) / voice_rate
    os.remove(tmp)
    mono = np.concatenate(pieces)
    mono += np.random.default_rng(seed).normal(0, noise, mono.size).astype(np.float32)
    raw = os.path.join(out_dir, "mono.wav")
    with wave.open(raw, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(voice_rate)
        w.writeframes((np.clip(mono, -1, 1) * 32767).astype("<i2").tobytes())
    path = os.path.join(out_dir, "recording.wav")
    # Resampled by sox, the channels at unequal levels (a stereo recording, not a copied one).
    remix = ["remix", "1v0.9", "1v0.6"] if channels == 2 else (["remix"] + ["1"] * channels if channels > 1 else [])
    subprocess.run(["sox", raw, "-r", str(rate), path] + remix, check=True, capture_output=True)
    os.remove(raw)
    return path, sentences, silence

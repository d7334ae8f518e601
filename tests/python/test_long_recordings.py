"""Long recordings end to end: a 10-minute synthetic recording (espeak-ng sentences with known
text and timing, pauses of 0.3 to 3 s, a 60-s silence, 44.1 kHz stereo with mild noise) through
`wavllm transcribe -osrt -ovtt -ocsv -oj -otxt` on the demo model, the subtitles read back by
ffmpeg, and the Python segments API on the same file.
"""
import csv
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import wavllm

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "eval"))
from wavllm_eval import synthetic  # noqa: E402

BUILD = pathlib.Path(wavllm.__file__).resolve().parents[2]
WAVLLM = BUILD / "bin" / "wavllm"
DEMO = ROOT / "models" / "demo"
MAX_SEGMENT = 30.0
TOLERANCE = 0.3  # seconds between a piece's edge and a sentence's

missing = synthetic.missing_tools() + [t for t in ("ffmpeg",) if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (./setup.sh installs them)")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    d = tmp_path_factory.mktemp("long")
    path, sentences, silence = synthetic.recording(d, seconds=600, seed=0, rate=44100, channels=2, noise=0.003)
    return pathlib.Path(path), sentences, silence


@pytest.fixture(scope="module")
def transcribed(recording):
    path = recording[0]
    r = subprocess.run([WAVLLM, "transcribe", "-m", DEMO, "-f", path, "-osrt", "-ovtt", "-ocsv", "-oj", "-otxt",
                        "--max-new-tokens", "4", "--logprobs", "-t", "2"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r, json.loads(pathlib.Path(f"{path}.json").read_text())


def near(x, points):
    return min(abs(x - p) for p in points) <= TOLERANCE


def test_pieces_follow_the_sentences(recording, transcribed):
    _, sentences, silence = recording
    _, out = transcribed
    segments = out["segments"]
    assert out["segmented"] and out["duration"] == pytest.approx(600, abs=8)
    assert len(segments) >= 600 / MAX_SEGMENT * 0.6  # pieces, not one request
    starts, ends = [s for s, _, _ in sentences], [e for _, e, _ in sentences]
    for seg in segments:
        assert near(seg["start"], starts), seg
        assert near(seg["end"], ends), seg
        assert seg["end"] - seg["start"] <= MAX_SEGMENT + 1e-6
        assert not (silence[0] + TOLERANCE < seg["start"] < silence[1] - TOLERANCE), "a piece starts in the silence"
        assert len(seg["token_ids"]) == len(seg["token_logprobs"]) and all(lp <= 0 for lp in seg["token_logprobs"])
    # Every sentence lies inside one piece: none is cut, none is left out.
    for start, end, text in sentences:
        assert any(seg["start"] <= start and end <= seg["end"] for seg in segments), text
    assert out["speech_seconds"] < out["duration"] - 50  # the silence was not decoded


def test_subtitles_read_back_by_ffmpeg(recording, transcribed):
    path = recording[0]
    _, out = transcribed
    cues = [s for s in out["segments"] if s["text"].strip()]
    for ext, fmt in (("srt", "srt"), ("vtt", "webvtt")):
        # ffmpeg parses the file and writes it again: the same cues come out.
        r = subprocess.run(["ffmpeg", "-v", "error", "-i", f"{path}.{ext}", "-f", fmt, "-"], capture_output=True,
                           timeout=60)
        assert r.returncode == 0 and not r.stderr, r.stderr
        assert r.stdout.decode("utf-8").count(" --> ") == len(cues), ext
    with open(f"{path}.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["start"]) for r in rows] == [round(s["start"] * 1000) for s in out["segments"]]
    assert len(pathlib.Path(f"{path}.txt").read_text(encoding="utf-8").splitlines()) == len(out["segments"])


def test_progress_and_the_python_api_agree(recording, transcribed):
    path = recording[0]
    r, out = transcribed
    assert "pieces" in r.stderr and "ETA" in r.stderr  # progress on stderr
    model = wavllm.Model(DEMO, threads=2)
    segments, info = model.transcribe(str(path), segments=True, max_new_tokens=4)
    assert info.pieces == len(out["segments"]) and info.duration == pytest.approx(out["duration"])
    got = list(segments)
    assert [(s.start, s.end) for s in got] == [(s["start"], s["end"]) for s in out["segments"]]
    assert [s.token_ids for s in got] == [s["token_ids"] for s in out["segments"]]  # greedy: the same tokens


def test_an_encoder_batch_of_pieces_decodes_the_same_tokens(recording, transcribed):
    path = recording[0]
    _, out = transcribed
    model = wavllm.Model(DEMO, threads=2)
    # 23 pieces in batches of 4: the last batch is partial.
    segments, info = model.transcribe(str(path), segments=True, max_new_tokens=4, encoder_batch=4)
    got = list(segments)
    assert info.pieces % 4 != 0
    assert [(s.start, s.end) for s in got] == [(s["start"], s["end"]) for s in out["segments"]]
    assert [s.token_ids for s in got] == [s["token_ids"] for s in out["segments"]]
    with pytest.raises(wavllm.ArgumentError, match="encoder batch must be 1 to 64 pieces, got 0"):
        model.segments(str(path), wavllm.transcribe_instruction(), encoder_batch=0)


def test_outputs_are_never_written_over(recording, transcribed):
    path = recording[0]
    before = pathlib.Path(f"{path}.srt").read_bytes()
    r = subprocess.run([WAVLLM, "transcribe", "-m", DEMO, "-osrt", path], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "exists; choose another -of NAME or pass --overwrite" in r.stderr
    assert pathlib.Path(f"{path}.srt").read_bytes() == before

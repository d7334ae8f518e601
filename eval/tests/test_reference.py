"""The eager reference (eval/reference) against every stage fixture, with the bounds of
tests/fixtures/README.md. Each case runs the whole chain on the reference's own upstream
outputs, so a pass means the reference reproduces the original end to end."""
import json
import os

import numpy as np
import pytest
import torch

from reference import Reference, log_mel, read_wav16k
from reference.model import stio

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
CASES = json.load(open(os.path.join(FIX, "cases.json")))
FRONT = stio.read_file(os.path.join(FIX, "frontend.safetensors"))

try:
    import sentencepiece  # noqa: F401  (python3-sentencepiece)
    HAVE_SP = True
except ImportError:
    HAVE_SP = False


@pytest.fixture(scope="module")
def ref():
    return Reference.load(os.path.join(ROOT, "models", "demo"), tokenizer=HAVE_SP)


def waveform(case):
    stem = case["audio"].rsplit(".", 1)[0]
    if f"{stem}.wave16k" in FRONT:  # resampled inputs: the reference resampler's output
        return stem, np.array(FRONT[f"{stem}.wave16k"])
    return stem, read_wav16k(os.path.join(FIX, "audio", case["audio"]))


def assert_close(actual, expected, what, bound=None):
    actual = actual.numpy() if torch.is_tensor(actual) else np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    if bound is None:
        bound = 1e-4 * max(1.0, float(np.abs(expected).max()))
    err = float(np.abs(actual - expected).max())
    assert err <= bound, f"{what}: max abs diff {err:.3g} > {bound:.3g}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_log_mel(name):
    stem, wav = waveform(CASES[name])
    assert wav.size == CASES[name]["samples_16k"]
    mels, frames = log_mel(wav)
    assert len(frames) == CASES[name]["whisper_parts"]
    for i in range(len(frames)):
        assert frames[i] == FRONT[f"{stem}.part{i}.frames"][0]
        assert_close(mels[i], FRONT[f"{stem}.part{i}.logmel"], f"{stem} part {i} log-mel", bound=1e-4)


@pytest.mark.parametrize("name", sorted(CASES))
def test_stages(ref, name):
    case = CASES[name]
    st = stio.read_file(os.path.join(FIX, "stages", f"{name}.safetensors"))
    stem, wav = waveform(case)
    parts = case["whisper_parts"]
    mels = np.stack([FRONT[f"{stem}.part{i}.logmel"] for i in range(parts)])
    frames = np.array([FRONT[f"{stem}.part{i}.frames"][0] for i in range(parts)])

    enc, valid = ref.whisper_encoder(mels, frames)
    for i in range(parts):
        assert valid[i] == st[f"whisper.part{i}.valid_len"][0]
        assert_close(enc[i], st[f"whisper.part{i}.encoder_out"], f"whisper part {i}")
    wb = ref.whisper_branch(enc)
    assert_close(wb, st["whisper_branch"], "whisper_branch")

    hidden = ref.wavlm_hidden_states(wav)
    assert len(hidden) == ref.cfg["wavlm"]["num_hidden_layers"] + 1
    for layer, h in enumerate(hidden):
        assert_close(h, st[f"wavlm.hidden.{layer}"], f"wavlm hidden {layer}")
    weighted = ref.wavlm_weighted(hidden)
    assert_close(weighted, st["wavlm.weighted"], "wavlm.weighted")
    vb = ref.wavlm_branch(weighted)
    assert_close(vb, st["wavlm_branch"], "wavlm_branch")

    emb = ref.fuse(wb, vb)
    assert emb.shape[0] == case["audio_frames"]
    assert_close(emb, st["audio_embeds"], "audio_embeds")

    ids = [st[k].tolist() for k in ("prompt.left_ids", "prompt.right_ids", "prompt.orig_ids")]
    if HAVE_SP:
        assert list(ref.prompt_ids(case["prompt"])) == ids
    left, right, orig = ids
    scale = ref.prompt_scale(orig)
    assert_close(scale, st["prompt_scale"], "prompt_scale")

    logits, decoded, generated = ref.decode(emb, left, right, scale,
                                            max_new_tokens=len(case["generated_ids"]))
    assert decoded == st["decoded_tokens"].tolist()
    assert generated == st["generated_ids"].tolist() == case["generated_ids"]
    assert_close(logits, st["step_logits"], "step_logits", bound=1e-3)
    assert set(ref.timings) >= {"whisper_encoder", "wavlm_encoder", "decode"}


@pytest.fixture(scope="module")
def short_run(ref):
    """Reference.run on the short_er case, with the stages its on_stage hook reported."""
    if not HAVE_SP:
        pytest.skip("needs python3-sentencepiece")
    case = CASES["short_er"]
    seen = []
    ref.on_stage = lambda stage, seconds: seen.append(stage)
    try:
        r = ref.run(waveform(case)[1], case["prompt"], max_new_tokens=len(case["generated_ids"]))
    finally:
        ref.on_stage = None
    return r, seen


def test_run_reports_text_and_stage_timings(short_run):
    r, seen = short_run
    case = CASES["short_er"]
    assert r.generated_ids == case["generated_ids"]
    assert r.text == case["text"]
    assert seen[0] == "log_mel" and seen[-1] == "decode" and set(seen) == set(r.timings)
    assert all(t >= 0 for t in r.timings.values())


def test_stage_dump_has_the_fixture_layout(short_run, tmp_path):
    r, _ = short_run
    path = str(tmp_path / "stages.safetensors")
    r.save_stages(path, {"prompt": "p"})
    got = stio.read_file(path)
    want = stio.read_file(os.path.join(FIX, "stages", "short_er.safetensors"))
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
    assert np.array_equal(got["decoded_tokens"], want["decoded_tokens"])
    assert_close(got["audio_embeds"], want["audio_embeds"], "dumped audio_embeds")
    assert stio.read_header(path)[1] == {"prompt": "p"}


def test_wavlm_do_normalize_normalises_the_input(ref):
    wav = read_wav16k(os.path.join(FIX, "audio", "short.wav"))
    normalised = (wav - wav.mean()) / np.sqrt(wav.var() + 1e-7)
    expected = ref.wavlm_hidden_states(normalised)[-1]
    ref.cfg["wavlm"]["do_normalize"] = True
    try:
        got = ref.wavlm_hidden_states(wav)[-1]
    finally:
        ref.cfg["wavlm"]["do_normalize"] = False
    assert_close(got, expected, "normalised WavLM output")
    assert not torch.allclose(got, ref.wavlm_hidden_states(wav)[-1])

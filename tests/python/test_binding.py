"""The Python binding against the reference fixtures (tests/fixtures, bounds of its README) on
the demo model (the tiny fixture model as a model directory).

Run: PYTHONPATH=build/python /usr/bin/python3 -m pytest -q tests/python
"""
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import wavllm
from wavllm import safetensors_io

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
AUDIO = FIXTURES / "audio"
DEMO = ROOT / "models" / "demo"
CASES = json.loads((FIXTURES / "cases.json").read_text())


def stages(case):
    path = FIXTURES / "stages" / f"{case}.safetensors"
    return safetensors_io.read_file(str(path)), safetensors_io.read_header(str(path))[1]


@pytest.fixture(scope="module")
def frontend():
    return safetensors_io.read_file(str(FIXTURES / "frontend.safetensors"))


@pytest.fixture(scope="module")
def model():
    return wavllm.Model(str(DEMO), threads=1)


def assert_close_rel(actual, ref, what):
    """The fixtures' stage bound: max abs diff <= 1e-4 * max(1, max |ref|)."""
    assert actual.shape == ref.shape, what
    bound = 1e-4 * max(1.0, float(np.abs(ref).max()))
    diff = float(np.abs(actual.astype(np.float64) - ref).max())
    assert diff <= bound, f"{what}: max abs diff {diff:.3g} > {bound:.3g}"


def test_load_audio_16k_and_resampled(frontend):
    plants = wavllm.load_audio(str(AUDIO / "plants.wav"))
    assert plants.dtype == np.float32 and plants.ndim == 1
    assert plants.size == CASES["plants_asr"]["samples_16k"]
    # 44.1 kHz stereo through libsoxr + mixdown: SNR >= 60 dB against SoX's output.
    stereo = wavllm.load_audio(AUDIO / "stereo44k.wav")  # os.PathLike is accepted
    ref = frontend["stereo44k.wave16k"]
    assert stereo.shape == ref.shape
    snr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((stereo - ref).astype(np.float64) ** 2))
    assert snr >= 60, f"SNR {snr:.1f} dB"


@pytest.mark.parametrize("stem", ["plants", "story"])
def test_log_mel_matches_frontend_fixture(frontend, stem):
    mel, frames = wavllm.log_mel(wavllm.load_audio(str(AUDIO / f"{stem}.wav")))
    parts = CASES["story_st" if stem == "story" else "plants_asr"]["whisper_parts"]
    assert mel.shape == (parts, 80, 3000) and mel.dtype == np.float32
    assert frames.shape == (parts,)
    for i in range(parts):
        ref = frontend[f"{stem}.part{i}.logmel"]
        assert float(np.abs(mel[i] - ref).max()) <= 1e-4, f"{stem} part {i}"
        assert frames[i] == frontend[f"{stem}.part{i}.frames"][0]


def test_prompt_ids_identical(model):
    for case, spec in CASES.items():
        ref, _ = stages(case)
        left, right, orig = model.prompt_ids(spec["prompt"])
        assert left == ref["prompt.left_ids"].tolist(), case
        assert right == ref["prompt.right_ids"].tolist(), case
        assert orig == ref["prompt.orig_ids"].tolist(), case


def test_stage_outputs(model):
    case = "plants_asr"  # two-part audio is covered end to end by test_generate_matches_fixture
    ref, _ = stages(case)
    samples = wavllm.load_audio(str(AUDIO / CASES[case]["audio"]))
    parts = model.whisper_encoder(samples)
    assert len(parts) == CASES[case]["whisper_parts"]
    for i, part in enumerate(parts):
        assert_close_rel(part, ref[f"whisper.part{i}.encoder_out"], f"whisper part {i}")
    hidden = model.wavlm_hidden_states(samples)
    assert len(hidden) == model.config["wavlm"]["num_hidden_layers"] + 1
    for layer, h in enumerate(hidden):
        assert_close_rel(h, ref[f"wavlm.hidden.{layer}"], f"wavlm hidden {layer}")
    assert_close_rel(model.audio_embeddings(samples), ref["audio_embeds"], "audio_embeds")
    assert_close_rel(model.prompt_scale(CASES[case]["prompt"]), ref["prompt_scale"], "prompt_scale")


@pytest.mark.parametrize("case", ["plants_asr", "story_st"])  # one and two Whisper parts
def test_generate_matches_fixture(model, case):
    ref, meta = stages(case)
    pieces = []
    r = model.generate(str(AUDIO / CASES[case]["audio"]), CASES[case]["prompt"], max_new_tokens=10,
                       return_step_logits=True, on_text=pieces.append)
    assert r.token_ids == ref["generated_ids"].tolist()
    assert r.decoded_tokens == ref["decoded_tokens"].tolist()
    assert r.text == meta["text"] == CASES[case]["text"]
    assert "".join(pieces) == r.text  # streamed pieces add up to the text
    diff = float(np.abs(r.step_logits - ref["step_logits"]).max())
    assert r.step_logits.shape == ref["step_logits"].shape and diff <= 1e-3, diff
    stages_ = {"audio", "frontend", "whisper", "wavlm", "adapters", "prompt_adapter", "prefill", "decode"}
    assert set(r.timings) == stages_ | {"total"}
    assert r.audio_seconds == pytest.approx(CASES[case]["samples_16k"] / 16000)
    assert r.timings["audio"] > 0  # decoding the file, timed by the engine
    assert r.timings["total"] == pytest.approx(sum(r.timings[s] for s in stages_))
    assert r.real_time_factor == pytest.approx(r.timings["total"] / r.audio_seconds)
    # The same JSON form as `wavllm ... --json` and batch lines (tests/cli check that one).
    j = json.loads(r.to_json())
    assert set(j) == {"text", "token_ids", "audio_seconds", "real_time_factor", "timings"}
    assert j["text"] == r.text and j["token_ids"] == r.token_ids and j["timings"] == r.timings


def test_task_helpers(model):
    samples = wavllm.load_audio(str(AUDIO / "short.wav"))
    er = stages("short_er")[0]["generated_ids"].tolist()
    r = model.generate(samples, wavllm.emotion_instruction(), max_new_tokens=10)
    assert r.token_ids == er and r.step_logits is None  # logits only when asked
    assert r.timings["audio"] == 0  # an array needs no decoding
    assert wavllm.translate_instruction("german") == "Translate the audio clip into German."
    plants = str(AUDIO / "plants.wav")
    assert model.transcribe(plants, max_new_tokens=10) == CASES["plants_asr"]["text"]
    assert isinstance(model.translate(samples, to="French", max_new_tokens=3), str)
    museum = CASES["museum_sqa"]
    assert model.ask(str(AUDIO / "museum.wav"), museum["prompt"], max_new_tokens=10) == museum["text"]


@pytest.mark.parametrize("bad, message", [
    (np.zeros(1600, dtype=np.float64), "float32"),
    (np.zeros(1600, dtype=">f4"), "float32"),  # float32 of the other byte order
    (np.zeros((2, 1600), dtype=np.float32), "1-D"),
    (np.zeros(3200, dtype=np.float32)[::2], "contiguous"),
    (np.zeros(0, dtype=np.float32), "empty"),
])
def test_bad_arrays_are_value_errors(model, bad, message):
    with pytest.raises(ValueError, match=message):
        model.audio_embeddings(bad)
    with pytest.raises(ValueError, match=message):
        wavllm.log_mel(bad)


def test_engine_errors_are_wavllm_errors(model, tmp_path):
    assert issubclass(wavllm.Error, RuntimeError)
    with pytest.raises(TypeError, match="path or a float32"):
        model.audio_embeddings([0.0] * 1600)
    missing = tmp_path / "missing.wav"
    with pytest.raises(wavllm.Error, match="missing.wav"):
        wavllm.load_audio(str(missing))
    nan = np.zeros(1600, dtype=np.float32)
    nan[5] = np.nan
    with pytest.raises(wavllm.Error):
        model.audio_embeddings(nan)
    with pytest.raises(wavllm.Error, match="top_p"):
        model.generate(np.full(1600, 0.1, np.float32), "Hi", top_p=0.0)
    with pytest.raises(wavllm.Error, match=str(tmp_path)):
        wavllm.Model(str(tmp_path))
    with pytest.raises(wavllm.Error, match="tpu"):
        wavllm.Model(str(DEMO), device="tpu")
    with pytest.raises(ValueError, match="threads must be >= 0"):
        wavllm.Model(str(DEMO), threads=-1)


def test_stop_strings(model):
    text = CASES["short_er"]["text"]
    short = str(AUDIO / "short.wav")
    r = model.generate(short, CASES["short_er"]["prompt"], max_new_tokens=10, stop="he")
    assert r.text == text[:text.index("he")]
    with pytest.raises(TypeError, match="stop"):
        model.generate(short, "Hi", stop=[1, 2])


def test_callback_exception_stops_generation(model):
    def boom(piece):
        raise KeyError("stop here")
    with pytest.raises(KeyError, match="stop here"):
        model.generate(str(AUDIO / "short.wav"), "Hi", max_new_tokens=5, on_text=boom)


def test_threads_share_one_model(model, frontend):
    cases = ["plants_asr", "museum_sqa", "short_er", "stereo_sv"]
    audio = {c: wavllm.load_audio(str(AUDIO / CASES[c]["audio"])) for c in cases[:3]}
    audio["stereo_sv"] = np.ascontiguousarray(frontend["stereo44k.wave16k"])  # the fixture's input

    def run(case):
        r = model.generate(audio[case], CASES[case]["prompt"], max_new_tokens=10, return_step_logits=True)
        return r.token_ids, r.step_logits

    sequential = {c: run(c) for c in cases}
    threaded, errors = {}, []

    def worker(case):
        try:
            threaded[case] = run(case)
        except Exception as e:  # reported below: an exception in a thread would otherwise vanish
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(c,)) for c in cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for c in cases:
        assert threaded[c][0] == sequential[c][0] == CASES[c]["generated_ids"], c
        np.testing.assert_array_equal(threaded[c][1], sequential[c][1], err_msg=c)


def test_generation_options_are_the_engine_struct(model):
    case = CASES["plants_asr"]
    audio = str(AUDIO / case["audio"])
    defaults = model.generation_options
    assert isinstance(defaults, wavllm.GenerationOptions)
    assert (defaults.temperature, defaults.num_beams, defaults.max_steps) == (0.0, 1, 512)
    opts = wavllm.GenerationOptions()
    opts.max_new_tokens = 3
    opts.stop = "x"
    assert opts.stop == ["x"]
    opts.stop = None
    by_object = model.generate(audio, case["prompt"], options=opts)
    by_keyword = model.generate(audio, case["prompt"], max_new_tokens=3)
    assert list(by_object.token_ids) == list(by_keyword.token_ids) == case["generated_ids"][:3]
    # A keyword over an options object; None leaves the object's value.
    assert len(model.generate(audio, case["prompt"], options=opts, max_new_tokens=2).token_ids) == 2
    assert len(model.generate(audio, case["prompt"], options=opts, max_new_tokens=None).token_ids) == 3
    with pytest.raises(TypeError, match="unexpected keyword argument 'temprature'"):
        model.generate(audio, case["prompt"], temprature=0.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'validate'"):
        model.generate(audio, case["prompt"], validate=1)
    bad = wavllm.GenerationOptions()
    bad.top_p = 0
    with pytest.raises(wavllm.ArgumentError, match="top_p"):
        bad.validate()
    with pytest.raises(wavllm.ArgumentError, match="top_p"):
        model.generate(audio, case["prompt"], options=bad)


def test_threads_are_the_models_own():
    # Each model keeps its own count (the C++ suite checks that calls leave the process's alone).
    assert wavllm.Model(str(DEMO), threads=1).threads == 1
    assert wavllm.Model(str(DEMO)).threads == len(os.sched_getaffinity(0))
    assert wavllm.Model(str(DEMO), threads=0).threads == len(os.sched_getaffinity(0))  # as --threads 0


def test_whisper_margin_is_opt_in(model):
    # None (the reference's whole window) unless asked for; the output keeps its shape.
    assert model.whisper_margin is None
    tight = wavllm.Model(str(DEMO), threads=1, whisper_margin=2.0)
    assert tight.whisper_margin == 2.0
    audio = str(ROOT / "samples" / "plants.wav")
    assert [w.shape for w in tight.whisper_encoder(audio)] == [w.shape for w in model.whisper_encoder(audio)]
    with pytest.raises(wavllm.ArgumentError, match="the Whisper margin must be 0 to 30 seconds"):
        wavllm.Model(str(DEMO), whisper_margin=-1)


def test_stored_preset_scales_are_the_computed_ones(model, tmp_path):
    folder = tmp_path / "demo"
    shutil.copytree(DEMO, folder)
    first = wavllm.Model(str(folder), threads=1)
    assert first.preset_scales_loaded == 0
    assert Path(first.save_preset_scales()) == folder / "prompt_scales.safetensors"
    again = wavllm.Model(str(folder), threads=1)
    assert again.preset_scales_loaded == 27
    for instruction in ("Based on the attached audio, generate a comprehensive text transcription of the spoken content.",
                        "Can you describe the emotional condition of the speaker in the provided audio clip?"):
        np.testing.assert_array_equal(again.prompt_scale(instruction), model.prompt_scale(instruction))
    # Another thread count is another identity: the file is not used, and the scales are computed.
    assert wavllm.Model(str(folder), threads=2).preset_scales_loaded == 0

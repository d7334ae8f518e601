"""Bad arguments through the Python binding: each gets a named exception, never a crash or
silent garbage. docs/bad-input.md lists these rows beside the engine's other bad-input tests.

Run: PYTHONPATH=build/python /usr/bin/python3 -m pytest -q tests/python
"""
from pathlib import Path

import numpy as np
import pytest

import wavllm

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "models" / "demo"
SHORT = str(ROOT / "tests" / "fixtures" / "audio" / "short.wav")


@pytest.fixture(scope="module")
def model():
    return wavllm.Model(str(DEMO), threads=1)


@pytest.fixture(scope="module")
def audio():
    return wavllm.load_audio(SHORT)


@pytest.mark.parametrize("options, message", [
    (dict(temperature=-0.5), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_p=1.5), "top_p"),
    (dict(top_k=-1), "top_k"),
    (dict(num_beams=0), "num_beams"),
    (dict(max_new_tokens=-1), "max_new_tokens"),
    (dict(repetition_penalty=0.0), "repetition_penalty"),
    (dict(no_repeat_ngram_size=-2), "no_repeat_ngram_size"),
    (dict(stop=[""]), "stop"),
])
def test_bad_generation_options_name_the_option(model, audio, options, message):
    with pytest.raises(wavllm.Error, match=message):
        model.generate(audio, "Hi", **options)


@pytest.mark.parametrize("options", [dict(seed=-1), dict(foo=1), dict(max_new_tokens="5")])
def test_wrong_argument_types_are_type_errors(model, audio, options):
    with pytest.raises(TypeError):
        model.generate(audio, "Hi", **options)


def test_prompt_longer_than_the_context(model, audio):
    with pytest.raises(wavllm.Error, match="rotary table has 2048"):
        model.generate(audio, "word " * 3000, max_new_tokens=1)


def test_audio_longer_than_the_context_is_refused_before_encoding(model):
    with pytest.raises(wavllm.Error, match="decoder positions"):
        model.generate(np.full(16000 * 170, 0.01, np.float32), "Hi")


def test_max_new_tokens_zero_means_no_limit_and_huge_is_bounded(model, audio):
    steps = 12
    unlimited = model.generate(audio, "Hi", max_new_tokens=0, max_steps=steps)
    huge = model.generate(audio, "Hi", max_new_tokens=10**9, max_steps=steps)
    assert unlimited.token_ids == huge.token_ids
    assert 0 < len(huge.decoded_tokens) <= steps + 1


def test_empty_instruction_runs_as_in_the_reference(model, audio):
    result = model.generate(audio, "", max_new_tokens=2)
    assert len(result.token_ids) == 2
    left, right, orig = model.prompt_ids("")
    assert len(orig) > 0 and len(right) > 0


@pytest.mark.parametrize("language", ["Klingonese", "", "  "])
def test_unknown_translation_language(model, audio, language):
    with pytest.raises(wavllm.Error, match="language"):
        model.translate(audio, to=language)


def test_bad_audio_arguments(model):
    with pytest.raises(wavllm.Error, match="no such file"):
        model.transcribe("")
    with pytest.raises(wavllm.Error, match="directory"):
        model.transcribe(str(ROOT / "tests"))
    with pytest.raises(wavllm.Error, match="infinite"):
        model.audio_embeddings(np.full(1600, np.inf, np.float32))
    with pytest.raises(wavllm.Error, match="too short"):
        model.audio_embeddings(np.full(100, 0.1, np.float32))
    with pytest.raises(TypeError):
        model.transcribe(None)


def test_bad_model_arguments(tmp_path):
    with pytest.raises(wavllm.Error, match="int8"):
        wavllm.Model(str(DEMO), dtype="int8")
    with pytest.raises(wavllm.Error, match="float16 runs on CUDA only"):
        wavllm.Model(str(DEMO), dtype="float16")
    with pytest.raises(wavllm.Error, match="no such model directory"):
        wavllm.Model(str(DEMO / "config.json"))
    bad = tmp_path / "model"
    bad.mkdir()
    for name in ("model.safetensors", "tokenizer.model"):
        (bad / name).write_bytes((DEMO / name).read_bytes())
    (bad / "config.json").write_text('{"format_version": 1, "whisper": {}, "wavlm": {}, "adapter": {}, "llama": {"dimm": 1}}')
    with pytest.raises(wavllm.Error, match='unknown key "dimm"'):
        wavllm.Model(str(bad))


# --- round 2 -------------------------------------------------------------------------------

def test_paths_may_be_pathlib(audio):
    m = wavllm.Model(DEMO, threads=1)
    assert m.transcribe(Path(SHORT), max_new_tokens=2) == m.transcribe(SHORT, max_new_tokens=2)
    assert np.array_equal(wavllm.load_audio(Path(SHORT)), audio)
    with pytest.raises(TypeError, match="model directory"):
        wavllm.Model(3)


def test_symlink_loop_is_a_wavllm_error(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(wavllm.Error, match="symbolic links"):
        wavllm.Model(tmp_path / "loop")


def test_overlong_array_is_refused_before_it_is_copied(model):
    import resource
    three_hours = np.zeros(16000 * 3 * 3600, np.float32)  # untouched pages: no resident memory yet
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(wavllm.Error, match="the limit is 7200 s"):
        model.audio_embeddings(three_hours)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 100_000, f"peak memory grew by {grown_kb} kB: the 691 MB array was copied"


def test_threads_beyond_the_cores_are_capped(audio):
    m = wavllm.Model(str(DEMO), threads=100000)
    assert len(m.generate(audio, "Hi", max_new_tokens=2).token_ids) == 2


@pytest.mark.parametrize("options, message", [
    (dict(num_beams=64), "num_beams: must be in \\[1, 16\\]"),
    (dict(temperature=1e-300), "temperature: must be 0 \\(greedy\\) or in"),
    (dict(no_repeat_ngram_size=10**6), "no_repeat_ngram_size"),
    (dict(stop=["x"] * 65), "at most 64 stop strings"),
])
def test_options_that_pass_alone_but_fail_later(model, audio, options, message):
    with pytest.raises(wavllm.Error, match=message):
        model.generate(audio, "Hi", **options)


def test_tiny_top_p_samples_the_most_likely_token(model, audio):
    greedy = model.generate(audio, "Hi", max_new_tokens=6)
    tiny = model.generate(audio, "Hi", max_new_tokens=6, temperature=1.0, top_p=1e-300, seed=3)
    assert tiny.token_ids == greedy.token_ids


def test_huge_instruction_is_refused_before_tokenizing(model, audio):
    with pytest.raises(wavllm.Error, match="cannot fit the decoder's 2048 positions"):
        model.generate(audio, "word " * 2_000_000, max_new_tokens=1)
    with pytest.raises(wavllm.Error, match="cannot fit"):
        model.prompt_ids("x" * 10_000_000)


def test_paths_with_a_nul_byte_are_refused(model):
    # The system would open "short.wav" only: another file than the one named.
    with pytest.raises(wavllm.Error, match="NUL byte"):
        model.transcribe(SHORT + "\0../../etc/passwd")
    with pytest.raises(wavllm.Error, match="NUL byte"):
        wavllm.Model(str(DEMO) + "\0x")


def test_error_kinds_are_told_apart(model, audio):
    # An argument outside its rule: ArgumentError, also a ValueError and a wavllm.Error.
    for call in (lambda: model.generate(audio, "Hi", temperature=-1),
                 lambda: wavllm.Model(str(DEMO), dtype="int8"),
                 lambda: model.translate(audio, to="Klingonese")):
        with pytest.raises(wavllm.ArgumentError) as info:
            call()
        assert isinstance(info.value, ValueError) and isinstance(info.value, wavllm.Error)
    # A request beyond a limit: ResourceError.
    with pytest.raises(wavllm.ResourceError, match="decoder positions"):
        model.generate(np.full(16000 * 170, 0.01, np.float32), "Hi")
    # Bad input: wavllm.Error itself.
    with pytest.raises(wavllm.Error) as info:
        model.transcribe(str(ROOT / "README.md"))
    assert not isinstance(info.value, (wavllm.ArgumentError, wavllm.ResourceError))

"""Model.generate_many: requests decoded together by the continuous-batching scheduler, each to
the tokens generate() gives it, in request order, failures in their place."""
import pathlib

import numpy as np
import pytest

import wavllm

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO = ROOT / "models" / "demo"
AUDIO = ROOT / "tests" / "fixtures" / "audio"


@pytest.fixture(scope="module")
def model():
    return wavllm.Model(DEMO, threads=2)


def test_batched_answers_are_the_lone_ones_in_order(model):
    samples = wavllm.load_audio(AUDIO / "short.wav")
    requests = [(AUDIO / name, instruction)
                for name in ("plants.wav", "museum.wav", "stereo44k.wav", "phone8k.flac")
                for instruction in ("Describe the audio clip.", "What is the speaker's emotion?")]
    requests += [(samples, "Describe the audio clip."), (AUDIO / "nothing.wav", "Describe the audio clip."),
                 (np.zeros(10, np.float32), "Describe the audio clip.")]
    batch = model.generate_many(requests, parallel=3, max_new_tokens=9, temperature=0)
    assert len(batch) == len(requests)
    out = list(batch)
    for (audio, instruction), got in zip(requests[:-2], out[:-2]):
        alone = model.generate(audio, instruction, max_new_tokens=9, temperature=0)
        assert isinstance(got, wavllm.GenerationResult)
        assert list(got.token_ids) == list(alone.token_ids) and got.text == alone.text
    assert isinstance(out[-2], wavllm.Error) and "nothing.wav" in str(out[-2])  # the others went on
    assert isinstance(out[-1], wavllm.Error)  # too short for the model


def test_bad_arguments(model):
    with pytest.raises(wavllm.ArgumentError, match="num_beams"):
        model.generate_many([], num_beams=2)
    with pytest.raises(ValueError, match="parallel"):
        model.generate_many([], parallel=0)
    with pytest.raises(ValueError, match="pair"):
        model.generate_many([(AUDIO / "short.wav",)])
    with pytest.raises(TypeError, match="unexpected keyword"):
        model.generate_many([], max_new_token=3)

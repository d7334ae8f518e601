"""The Python API as a user meets it: signatures, help(), type stubs, readable results, the
names it shares with the CLI (docs/python.md)."""
import ast
import inspect
import pathlib
import pydoc

import numpy as np
import pytest

import wavllm

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO = ROOT / "models" / "demo"
AUDIO = ROOT / "tests" / "fixtures" / "audio"
STUB = ROOT / "python" / "wavllm" / "_wavllm.pyi"


@pytest.fixture(scope="module")
def model():
    return wavllm.Model(DEMO, threads=1)  # a pathlib.Path


@pytest.fixture(scope="module")
def samples():
    return wavllm.load_audio(AUDIO / "short.wav")


def test_a_mistyped_keyword_is_one_short_line(model, samples):
    calls = [lambda: model.transcribe(samples, max_new_token=3),
             lambda: model.generate(samples, "x", wavllm.GenerationOptions()),
             lambda: model.whisper_encoder(samples, 3),
             lambda: model.audio_embeddings(audio=samples, x=1),
             lambda: wavllm.log_mel(samples, 80, 1),
             lambda: wavllm.Model(DEMO, thread=2)]
    for call in calls:
        with pytest.raises(TypeError) as e:
            call()
        message = str(e.value)
        assert "array(" not in message and len(message) < 200, message


def test_help_reads_well():
    text = pydoc.render_doc(wavllm.Model, renderer=pydoc.plaintext)
    assert "Model(path, device=\"cpu\", dtype=\"auto\", threads=None, whisper_margin=None)" in text
    public = ["generate", "transcribe", "translate", "ask", "whisper_encoder", "wavlm_hidden_states",
              "audio_embeddings", "prompt_ids", "prompt_scale"]
    for name in public:
        method = getattr(wavllm.Model, name)
        assert inspect.getdoc(method) and "self" in str(inspect.signature(method)), name
    assert "audio, instruction, *, options=None, on_text=None, **fields" in str(inspect.signature(wavllm.Model.generate))
    for name in wavllm.__all__:
        assert inspect.getdoc(getattr(wavllm, name)), name


def test_type_stubs_name_exactly_the_compiled_module():
    tree = ast.parse(STUB.read_text())
    stubbed = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    stubbed |= {t.id for n in tree.body if isinstance(n, (ast.AnnAssign, ast.Assign))
                for t in ([n.target] if isinstance(n, ast.AnnAssign) else n.targets) if isinstance(t, ast.Name)}
    stubbed.discard("Audio")  # an alias of the stub itself
    compiled = {n for n in dir(wavllm._wavllm) if not n.startswith("_")} | {"__version__"}
    assert stubbed == compiled
    # Each stubbed class lists the compiled class's public members.
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        members = {m.name for m in cls.body if isinstance(m, ast.FunctionDef) and not m.name.startswith("_")}
        members |= {m.target.id for m in cls.body if isinstance(m, ast.AnnAssign)}
        real = {m for m in dir(getattr(wavllm._wavllm, cls.name)) if not m.startswith("_")}
        if not issubclass(getattr(wavllm._wavllm, cls.name), BaseException):
            assert members == real, cls.name


def test_results_and_options_print_readably(model, samples):
    r = model.generate(samples, wavllm.emotion_instruction(), max_new_tokens=2)
    assert repr(r).startswith("GenerationResult(text=") and "tokens=2" in repr(r)
    opts = repr(model.generation_options)
    for field in ("num_beams=1", "temperature=0.0", "max_new_tokens=", "stop=[]", "seed=None"):
        assert field in opts, opts
    assert repr(model) == f"wavllm.Model({str(DEMO)!r}, device='cpu', dtype='float32')"


def test_shared_vocabulary_with_the_cli(model):
    # dtype: "auto" is the stored dtype; the aliases are the engine's one table.
    assert model.dtype == "float32"
    assert [wavllm.canonical_dtype(n) for n in ("bf16", "fp16", "fp32", "half", "float")] == \
        ["bfloat16", "float16", "float32", "float16", "float32"]
    with pytest.raises(wavllm.ArgumentError, match="float16 runs on CUDA only"):
        wavllm.Model(DEMO, dtype="fp16")
    # threads: 0 (as --threads 0) and None are every core.
    assert wavllm.Model(DEMO, threads=0).threads == wavllm.Model(DEMO).threads
    assert "German" in wavllm.translation_languages()
    assert wavllm.__version__.count(".") == 2
    assert isinstance(np.asarray(model.prompt_scale(wavllm.transcribe_instruction())), np.ndarray)

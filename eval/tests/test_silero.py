"""Silero VAD as eval/vad_accuracy.py measures it: the torch re-implementation against the ONNX
graph itself, the frame decisions, and the piece planner fed with another detector's frames.

The released ONNX file is third-party (MIT): the graph tests read WAVLLM_SILERO_ONNX, or fetch the
npm package that ships it when npm can reach its registry, and skip with a message otherwise."""
import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="needs python3-onnx (setup.sh installs it)")
torch = pytest.importorskip("torch")

import wavllm  # noqa: E402
from wavllm_eval import onnx_graph, silero  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = str(ROOT / "samples" / "plants.wav")
NPM_PACKAGE = "@ricky0123/vad-web@0.0.31"
V5_SHA256 = "2623a2953f6ff3d2c1e61740c6cdb7168133479b267dfef114a4a3cc5bdd788f"


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    given = os.environ.get("WAVLLM_SILERO_ONNX")
    if given:
        return given
    if shutil.which("npm") is None:
        pytest.skip("Silero VAD's ONNX file: set WAVLLM_SILERO_ONNX, or install npm to fetch " + NPM_PACKAGE)
    tmp = tmp_path_factory.mktemp("silero")
    try:
        subprocess.run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=tmp, check=True, timeout=120,
                       capture_output=True)
    except (subprocess.SubprocessError, OSError) as e:
        pytest.skip(f"npm could not fetch {NPM_PACKAGE} ({e}); set WAVLLM_SILERO_ONNX")
    (tarball,) = tmp.glob("*.tgz")
    with tarfile.open(tarball) as tar:
        member = tar.getmember("package/dist/silero_vad_v5.onnx")
        data = tar.extractfile(member).read()
    assert hashlib.sha256(data).hexdigest() == V5_SHA256, "the npm package's silero_vad_v5.onnx changed"
    path = tmp / "silero_vad_v5.onnx"
    path.write_bytes(data)
    return str(path)


def test_torch_forward_equals_the_onnx_graph(onnx_path):
    model = onnx.load(onnx_path)
    w = silero.load_weights(onnx_path)
    samples = wavllm.load_audio(SAMPLE)
    h = torch.zeros(1, 128)
    c = torch.zeros(1, 128)
    state = np.zeros((2, 1, 128), np.float32)
    x = np.concatenate([np.zeros(silero.CONTEXT, np.float32), samples])
    steps = 12
    for k in range(steps):
        window = x[None, k * silero.CHUNK:k * silero.CHUNK + silero.CONTEXT + silero.CHUNK].astype(np.float32)
        want, state = onnx_graph.run(model, {"input": window, "state": state, "sr": np.array(16000, np.int64)})
        got, h, c = silero.step(w, torch.from_numpy(window), h, c)
        assert abs(float(got[0]) - float(want.ravel()[0])) < 1e-5
        assert np.abs(h.numpy() - state[0]).max() < 1e-5 and np.abs(c.numpy() - state[1]).max() < 1e-5
    # The batched whole-recording pass carries the same state as chunk-by-chunk steps.
    probs = silero.probabilities(w, samples, block=5)
    h = torch.zeros(1, 128)
    c = torch.zeros(1, 128)
    for k in range(steps):
        window = torch.from_numpy(x[None, k * silero.CHUNK:k * silero.CHUNK + silero.CONTEXT + silero.CHUNK])
        p, h, c = silero.step(w, window, h, c)
        assert abs(float(p[0]) - float(probs[k])) < 1e-5
    assert probs.shape == (samples.size // silero.CHUNK,)
    # Speech is found in the sample recording (which is speech from start to end).
    assert silero.voice_frames(probs, samples.size // silero.FRAME).mean() > 0.5


def test_load_weights_refuses_another_graph(tmp_path):
    node = onnx.helper.make_node("Relu", ["x"], ["y"])
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    path = tmp_path / "relu.onnx"
    onnx.save(onnx.helper.make_model(graph), str(path))
    with pytest.raises(ValueError, match="not Silero VAD v5"):
        silero.load_weights(str(path))


def test_voice_frames_hysteresis_and_frame_mapping():
    # Chunks of 512 samples, frames of 160: frame f's centre 160 f + 80 lies in chunk (160 f + 80) // 512.
    probs = np.array([0.1, 0.6, 0.4, 0.3, 0.5, 0.9])
    frames = silero.voice_frames(probs, 22)
    chunk = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6])
    speech = np.array([False, True, True, False, True, True])  # 0.4 stays on (>= 0.35), 0.3 ends it
    assert chunk[-1] == (21 * 160 + 80) // 512
    expected = np.array([speech[k] if k < len(probs) else False for k in chunk])
    np.testing.assert_array_equal(frames, expected)
    assert not silero.voice_frames(np.zeros(0), 3).any()


def test_speech_pieces_from_given_frames_match_the_detectors_own():
    samples = wavllm.load_audio(SAMPLE)
    padded = np.concatenate([np.zeros(16000 * 3, np.float32), samples, np.zeros(16000 * 3, np.float32)])
    own = wavllm.speech_pieces(padded, 30.0, 2)
    assert own and own == wavllm.speech_pieces(padded, 30.0, 2, frames=wavllm.voice_activity(padded, 2))
    none = wavllm.speech_pieces(padded, 30.0, frames=np.zeros(padded.size // 160, bool))
    assert none == []
    with pytest.raises(ValueError, match="one bool per whole 10-ms frame"):
        wavllm.speech_pieces(padded, 30.0, frames=np.zeros(7, bool))

"""Silero VAD v5 (the detector whisper.cpp adopted), for measuring it beside the engine's WebRTC
detector (eval/vad_accuracy.py --silero): its 16-kHz weights read from the released ONNX file and
its computation re-done in torch, checked against the ONNX graph itself (onnx_graph.py).

Per chunk of 512 samples (32 ms) with the 64 samples before it as context: a magnitude STFT (a
convolution with 129 cosine and 129 sine rows, 256 wide, hop 128, the chunk reflect-padded by 64
on the right), four 3-wide convolutions with ReLU (strides 1, 2, 2, 1: 129 -> 128 -> 64 -> 64 ->
128 channels over 4 -> 1 frames), an LSTM cell of 128 carried from chunk to chunk, ReLU, a 1x1
convolution and a sigmoid: the probability that the chunk is speech. The file: silero_vad.onnx of
github.com/snakers4/silero-vad, also silero_vad_v5.onnx inside the npm package @ricky0123/vad-web.
"""
import numpy as np
import onnx
import onnx.numpy_helper as numpy_helper
import torch
import torch.nn.functional as F

CHUNK = 512
CONTEXT = 64
FRAME = 160  # the engine's 10-ms voice-activity frame
STRIDES = (1, 2, 2, 1)
SHAPES = {
    "stft.forward_basis_buffer": (258, 1, 256),
    "encoder.0.reparam_conv.weight": (128, 129, 3), "encoder.0.reparam_conv.bias": (128,),
    "encoder.1.reparam_conv.weight": (64, 128, 3), "encoder.1.reparam_conv.bias": (64,),
    "encoder.2.reparam_conv.weight": (64, 64, 3), "encoder.2.reparam_conv.bias": (64,),
    "encoder.3.reparam_conv.weight": (128, 64, 3), "encoder.3.reparam_conv.bias": (128,),
    "decoder.rnn.weight_ih": (512, 128), "decoder.rnn.weight_hh": (512, 128),
    "decoder.rnn.bias_ih": (512,), "decoder.rnn.bias_hh": (512,),
    "decoder.decoder.2.weight": (1, 128, 1), "decoder.decoder.2.bias": (1,),
}


def load_weights(path):
    """The 16-kHz branch's tensors by their PyTorch names; a ValueError when the file is not
    Silero VAD v5's graph (a missing tensor or another shape)."""
    model = onnx.load(path)
    branches = [n for n in model.graph.node if n.op_type == "If"]
    if not branches:
        raise ValueError(f"{path}: no sample-rate branch; not Silero VAD v5's graph")
    then = [a.g for a in branches[0].attribute if a.name == "then_branch"][0]
    found = {}
    for node in then.node:
        name = node.output[0].split("Inline_0__")[-1]
        if node.op_type == "Constant" and name in SHAPES:
            found[name] = torch.from_numpy(numpy_helper.to_array(node.attribute[0].t).copy())
    for name, shape in SHAPES.items():
        if name not in found or tuple(found[name].shape) != shape:
            raise ValueError(f"{path}: tensor {name} is missing or not {shape}; not Silero VAD v5's graph")
    return found


def _encode(w, windows):
    """windows [n, CONTEXT + CHUNK] -> [n, 128], the part without state (batched)."""
    y = F.conv1d(F.pad(windows[:, None], (0, CONTEXT), mode="reflect"), w["stft.forward_basis_buffer"], stride=128)
    y = torch.sqrt(y[:, :129] ** 2 + y[:, 129:] ** 2)
    for i, stride in enumerate(STRIDES):
        y = F.relu(F.conv1d(y, w[f"encoder.{i}.reparam_conv.weight"], w[f"encoder.{i}.reparam_conv.bias"],
                            stride=stride, padding=1))
    return y[:, :, 0]


def _input_gates(w, windows):
    """The LSTM's input term for each chunk: no state involved, so batched."""
    return _encode(w, windows) @ w["decoder.rnn.weight_ih"].T + w["decoder.rnn.bias_ih"]


def _cell(w, gates_in, h, c):
    i, f, g, o = (gates_in + h @ w["decoder.rnn.weight_hh"].T + w["decoder.rnn.bias_hh"]).chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _head(w, h):
    return torch.sigmoid(F.relu(h) @ w["decoder.decoder.2.weight"][0, :, 0] + w["decoder.decoder.2.bias"])


def step(w, window, h, c):
    """One chunk as the ONNX graph takes it: window [b, CONTEXT + CHUNK], state h, c [b, 128]
    -> (probability [b], h, c)."""
    h, c = _cell(w, _input_gates(w, window), h, c)
    return _head(w, h), h, c


@torch.no_grad()
def probabilities(w, samples, block=4096):
    """Speech probability of each whole 512-sample chunk of 16-kHz `samples`, the state carried
    through and each chunk preceded by the 64 samples before it (zeros for the first)."""
    n = len(samples) // CHUNK
    x = torch.from_numpy(np.concatenate([np.zeros(CONTEXT, np.float32), np.asarray(samples[:n * CHUNK], np.float32)]))
    h = torch.zeros(128)
    c = torch.zeros(128)
    out = []
    for first in range(0, n, block):
        count = min(block, n - first)
        windows = x.unfold(0, CONTEXT + CHUNK, CHUNK)[first:first + count]
        gates = _input_gates(w, windows)
        hs = []
        for t in range(count):
            h, c = _cell(w, gates[t], h, c)
            hs.append(h)
        out.append(_head(w, torch.stack(hs)))
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def voice_frames(probs, frames, threshold=0.5):
    """Decisions for `frames` 10-ms frames from chunk probabilities, with Silero's own hysteresis
    (speech starts at >= threshold and ends below threshold - 0.15); a frame takes the decision of
    the chunk holding its centre (false past the last whole chunk)."""
    if len(probs) == 0:
        return np.zeros(frames, bool)
    speech = np.zeros(len(probs), bool)
    on = False
    for i, p in enumerate(probs):
        on = p >= (threshold - 0.15 if on else threshold)
        speech[i] = on
    chunk_of = (np.arange(frames) * FRAME + FRAME // 2) // CHUNK
    return np.where(chunk_of < len(probs), speech[np.minimum(chunk_of, len(probs) - 1)], False)

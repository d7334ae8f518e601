"""Evaluates an ONNX graph with numpy, for the operators Silero VAD's graph uses: the ground truth
the torch re-implementation in silero.py is checked against (no ONNX runtime is packaged for
Debian 12). Float64 throughout; an operator outside the list raises NotImplementedError."""
import numpy as np
import onnx
import onnx.numpy_helper as numpy_helper


def _attributes(node):
    return {a.name: (a.g if a.type == onnx.AttributeProto.GRAPH else onnx.helper.get_attribute_value(a))
            for a in node.attribute}


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _lstm(x, w, r, b, h, c):
    """One direction; ONNX's gate order i, o, f, c; x [seq, batch, input]."""
    hidden = r.shape[-1]
    bias = b[0][:4 * hidden] + b[0][4 * hidden:]
    h, c, ys = h[0], c[0], []
    for t in range(x.shape[0]):
        i, o, f, cell = np.split(x[t] @ w[0].T + h @ r[0].T + bias, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(cell)
        h = _sigmoid(o) * np.tanh(c)
        ys.append(h)
    return [np.stack(ys)[:, None], h[None], c[None]]


def _slice(x, starts, ends, axes=None, steps=None):
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for s, e, axis, step in zip(starts, ends, axes, steps):
        index[int(axis)] = slice(int(s), int(e) if int(e) > -(2 ** 62) else None, int(step))
    return x[tuple(index)]


def _conv1d(x, w, b, strides, pads, group=1):
    assert group == 1 and len(strides) == 1
    x = np.pad(x, [(0, 0), (0, 0), (pads[0], pads[1])])
    k, stride = w.shape[-1], strides[0]
    steps = (x.shape[-1] - k) // stride + 1
    windows = np.stack([x[:, :, t * stride:t * stride + k] for t in range(steps)], axis=-1)  # [n, cin, k, T]
    y = np.einsum("nckt,ock->not", windows, w)
    return y if b is None else y + b[None, :, None]


def _node(op, a, ins, env):
    if op == "Constant": return [numpy_helper.to_array(a["value"]).astype(np.float64)
                                 if a["value"].data_type == onnx.TensorProto.FLOAT else numpy_helper.to_array(a["value"])]
    if op == "ConstantOfShape":
        value = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
        return [np.full(tuple(int(d) for d in ins[0]), value.item(), value.dtype)]
    if op == "Concat": return [np.concatenate(ins, axis=a["axis"])]
    if op == "Reshape":
        return [ins[0].reshape([int(d) if d != 0 else ins[0].shape[k] for k, d in enumerate(ins[1])])]
    if op == "Slice": return [_slice(*ins)]
    if op == "Transpose": return [np.transpose(ins[0], a.get("perm"))]
    if op == "Cast":
        dtype = onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[a["to"]]
        return [ins[0].astype(np.float64 if dtype == np.float32 else dtype)]
    if op == "Pad":
        half = len(ins[1]) // 2
        widths = [(int(ins[1][i]), int(ins[1][i + half])) for i in range(half)]
        return [np.pad(ins[0], widths, mode=a.get("mode", b"constant").decode())]
    if op == "Unsqueeze":
        x = ins[0]
        for axis in sorted(int(v) % (x.ndim + len(ins[1])) for v in ins[1]):
            x = np.expand_dims(x, axis)
        return [x]
    if op == "Squeeze": return [np.squeeze(ins[0], axis=tuple(int(v) for v in ins[1]))]
    if op == "Conv": return [_conv1d(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a["strides"], a.get("pads", [0, 0]),
                                     a.get("group", 1))]
    if op == "Pow": return [np.power(ins[0], ins[1])]
    if op == "Add": return [ins[0] + ins[1]]
    if op == "Sqrt": return [np.sqrt(ins[0])]
    if op == "Relu": return [np.maximum(ins[0], 0)]
    if op == "Sigmoid": return [_sigmoid(ins[0])]
    if op == "Shape": return [np.array(ins[0].shape, np.int64)]
    if op == "Size": return [np.array(ins[0].size, np.int64)]
    if op == "Gather": return [np.take(ins[0], ins[1], axis=a.get("axis", 0))]
    if op == "Equal": return [np.equal(ins[0], ins[1])]
    if op == "Not": return [np.logical_not(ins[0])]
    if op == "Identity": return [ins[0]]
    if op == "ReduceMean": return [np.mean(ins[0], axis=tuple(a["axes"]), keepdims=bool(a.get("keepdims", 1)))]
    if op == "LSTM": return _lstm(ins[0], ins[1], ins[2], ins[3], ins[5], ins[6])
    if op == "If":
        branch = a["then_branch"] if bool(np.asarray(ins[0]).item()) else a["else_branch"]
        values = _run(branch, env)
        return [values[o.name] for o in branch.output]
    raise NotImplementedError(f"ONNX operator {op}")


def _run(graph, env):
    env = dict(env)
    for init in graph.initializer:
        env[init.name] = numpy_helper.to_array(init)
    for node in graph.node:
        ins = [env[name] if name else None for name in node.input]
        for name, value in zip(node.output, _node(node.op_type, _attributes(node), ins, env)):
            env[name] = value
    return env


def run(model, inputs):
    """The graph's outputs, in order, for a dict of named numpy inputs."""
    values = _run(model.graph, {k: (v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in inputs.items()})
    return [values[o.name] for o in model.graph.output]

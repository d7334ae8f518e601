"""Converts a WavLLM fairseq training checkpoint into a wavllm model directory.

    python3 -m wavllm.convert CHECKPOINT.pt OUT_DIR [--dtype float32|float16|bfloat16]
        [--shard-size 2GB] [--preset wavllm-7b | --hparams HPARAMS.json]
        [--tokenizer tokenizer.model] [--quantize q8_0|q4_0]

OUT_DIR gets config.json, model.safetensors (or shards plus model.safetensors.index.json)
and tokenizer.model. Only the checkpoint's `model` state dict is kept (optimizer and
training state are dropped). The checkpoint is read without executing pickled code
(wavllm._unpickle) and without torch, fairseq or omegaconf.

The tensor names come from the engine: its layers declare every tensor with the config field
each axis measures (`wavllm spec`, the binding's tensor_spec), so the converter needs numpy and
the compiled engine module beside this file (build/python, or `wavllm convert`).
config.json takes every size that tensor shapes tell from the shapes; the rest (attention
heads, strides, eps, rotary settings...) comes from the preset (the released WavLLM:
Whisper-large-v2, WavLM-base, LLaMA-2-7B) or from an --hparams JSON whose sections
(whisper, wavlm, adapter, llama) use config.json's key names. A value given there that
the shapes contradict is an error.
"""
import argparse
import copy
import json
import os
import re
import shutil
import sys
import tempfile

from ._unpickle import CheckpointError, Tensor, load_checkpoint
from .safetensors_io import SafetensorsError, parse_size, read_regular_file, to_dtype, write_sharded

__all__ = ["ConvertError", "PRESETS", "checkpoint_name", "convert", "derive_config", "main"]


class ConvertError(Exception):
    """A conversion that cannot proceed; the message names the file, tensor or option."""


SYSTEM_PROMPT = (
    "As a helpful language and speech assistant, you are able to understand the speech content "
    "provided by the user, and assist the user with a variety of tasks using natural language.")

# The released WavLLM (microsoft/SpeechT5 WavLLM/: whisper_encoder.py, wavlm.py, llama.py
# ModelArgs), laid out exactly as config.json (= wavllm::ModelConfig::released()).
PRESETS = {
    "wavllm-7b": {
        "format_version": 1,
        "model_type": "wavllm",
        "whisper": {"num_mel_bins": 80, "d_model": 1280, "encoder_layers": 32,
                    "encoder_attention_heads": 20, "encoder_ffn_dim": 5120,
                    "max_source_positions": 1500, "layer_norm_eps": 1e-5},
        "wavlm": {"conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
                  "conv_stride": [5, 2, 2, 2, 2, 2, 2], "conv_bias": False, "hidden_size": 768,
                  "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
                  "layer_norm_eps": 1e-5, "num_conv_pos_embeddings": 128,
                  "num_conv_pos_embedding_groups": 16, "num_buckets": 320,
                  "max_bucket_distance": 800, "do_normalize": False},
        "adapter": {"whisper_sub_mid": 1280, "wavlm_sub_mid": 512, "sub_out": 1024,
                    "adapter_down": 512, "branch_dim": 2048},
        "llama": {"dim": 4096, "n_layers": 32, "n_heads": 32, "vocab_size": 32000,
                  "multiple_of": 256, "norm_eps": 1e-6, "rope_theta": 10000.0,
                  "max_seq_len": 1024, "lora_r": 32, "prompt_hidden": 1024, "ffn_dim": 11008},
        "tokens": {"bos": 1, "eos": 2, "pad": 0},
        "generation": {"max_steps": 512, "temperature": 0.0, "top_p": 1.0, "top_k": 0,
                       "num_beams": 1, "length_penalty": 1.0, "repetition_penalty": 1.0,
                       "no_repeat_ngram_size": 0},
        "system_prompt": SYSTEM_PROMPT,
    },
}

# Hugging Face config keys an --hparams file may carry that config.json has no field for:
# the value the engine implements (None = training-only, any value is fine).
_HF_ONLY = {
    "wavlm": {"feat_extract_norm": "group", "do_stable_layer_norm": False,
              "sampling_rate": 16000, "mask_time_prob": None, "mask_feature_prob": None,
              "return_attention_mask": None, "padding_value": None},
}

# Wrapper modules that training leaves in parameter names: activation checkpointing (the
# released checkpoint) and FSDP (WavLLM wraps feed-forward blocks in it when enable_fsdp).
_WRAPPER_INFIX = re.compile(r"(^|\.)_(?:checkpoint|fsdp)_wrapped_module\.")
# torch >= 2.1 saves weight norm as a parametrization; the model format uses weight_g/weight_v.
_WEIGHT_NORM = {".parametrizations.weight.original0": ".weight_g",
                ".parametrizations.weight.original1": ".weight_v"}
_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}
_MAX_TOKENIZER_BYTES = 64 << 20  # = kMaxTokenizerFileBytes of the engine (LLaMA-2's is 0.5 MB)


def _count(names, prefix):
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for m in map(pat.match, names) if m}
    if found != set(range(len(found))):
        raise ConvertError(f"layers under {prefix} are not numbered 0..N-1: {sorted(found)}")
    if not found:
        raise ConvertError(f"the checkpoint's model has no tensor {prefix}0.* (is this a WavLLM checkpoint?)")
    return len(found)


def _engine():
    """The compiled engine module, whose layers name every tensor."""
    try:
        from . import _wavllm  # None when the package finds no compiled module
    except ImportError:
        _wavllm = None
    if _wavllm is None:
        raise ConvertError("the converter takes the model's tensor list from the compiled engine "
                           "(wavllm/_wavllm), which is not beside it: build the project and run "
                           "`wavllm convert` or PYTHONPATH=build/python python3 -m wavllm.convert")
    return _wavllm


def _spec(cfg):
    """The engine's declared tensors for config.json dict `cfg` (see `wavllm spec`)."""
    engine = _engine()
    try:
        return json.loads(engine.tensor_spec(json.dumps(cfg)))
    except engine.Error as e:
        raise ConvertError(f"the derived config.json would not load: {e}") from None


def _get(cfg, key):
    section, field = key.split(".", 1)
    return cfg[section][field]


def _with_counts(cfg, counts):
    """`cfg` with the repeat counts and flags set (list-valued keys: their lengths), for
    asking the engine which tensors such a model has."""
    probe = copy.deepcopy(cfg)
    for key, n in counts.items():
        section, field = key.split(".", 1)
        if isinstance(probe[section][field], list):  # a list's siblings share its length
            for name, value in probe[section].items():
                if isinstance(value, list) and len(value) == len(probe[section][field]):
                    probe[section][name] = (value + value[-1:] * n)[:n]
        else:
            probe[section][field] = n
    return probe


def _shape_config(shapes, base):
    """Every config value that tensor shapes determine, as a config.json-shaped dict: counts
    of repeated blocks, flags deciding a tensor, then each declared axis's config field."""
    names = list(shapes)
    first = _spec(base)
    values = {}
    for r in first["repeats"]:
        values[r["key"]] = _count(names, r["prefix"])
    for f in first["flags"]:
        values.setdefault(f["key"], f["tensor"] in shapes)
    spec = _spec(_with_counts(base, values))
    sources, ratios = {}, []
    for t in spec["tensors"]:
        for axis, src in enumerate(t["dims"]):
            if src is None:
                continue
            sources.setdefault(src["key"], t["name"])
            shape = shapes.get(t["name"])
            if shape is None or len(shape) != len(t["dims"]):
                continue  # reported by the tensor check once the config is complete
            size, factor = shape[axis], src.get("factor", 1)
            if "per" in src:
                ratios.append((src["key"], src["per"], size))
            elif size % factor == 0:
                values.setdefault(src["key"], size // factor)
    for key, per, size in ratios:
        if key in values and size and values[key] % size == 0:
            values.setdefault(per, values[key] // size)
    for key, name in sources.items():
        if key not in values:
            raise ConvertError(f"the checkpoint's model has no tensor {name} (is this a WavLLM checkpoint?)")
    out = {}
    for key, value in values.items():
        section, field = key.split(".", 1)
        head, _, index = field.rpartition(".")
        if index.isdigit():  # an element of a list field: "conv_dim.3"
            out.setdefault(section, {}).setdefault(head, {})[int(index)] = value
        elif not isinstance(_get(base, key), list):  # a list's length is told by its elements
            out.setdefault(section, {})[field] = value
    for section in out.values():
        for field, value in section.items():
            if isinstance(value, dict):
                section[field] = [value[i] for i in sorted(value)]
    return out


def _same_kind(value, like):
    """Whether an --hparams value has the type of the preset's value for that key."""
    if isinstance(like, bool):
        return isinstance(value, bool)
    if isinstance(like, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(like, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(like, list):
        return isinstance(value, list) and all(_same_kind(v, like[0]) for v in value) if like else False
    return isinstance(value, type(like))


def _kind_name(like):
    if isinstance(like, list):
        return f"a list of {_kind_name(like[0])}s" if like else "a list"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(like), type(like).__name__)


def derive_config(shapes, hparams=None, preset="wavllm-7b"):
    """config.json dict: sizes from `shapes` ({name: shape}), the rest from `hparams` (a
    dict in config.json's layout, HF-only keys allowed) or else from the preset."""
    if preset not in PRESETS:
        raise ConvertError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    cfg = copy.deepcopy(PRESETS[preset])
    from_shapes = _shape_config(shapes, cfg)
    for section, values in (hparams or {}).items():
        if section not in cfg or section in ("format_version", "model_type"):
            raise ConvertError(f"hparams: unknown section {section!r}")
        if not isinstance(cfg[section], dict):
            if not _same_kind(values, cfg[section]):
                raise ConvertError(f"hparams: {section} must be a {_kind_name(cfg[section])}, "
                                   f"got {values!r}")
            cfg[section] = values
            continue
        if not isinstance(values, dict):
            raise ConvertError(f"hparams: section {section!r} must be an object")
        for key, value in values.items():
            hf_only = _HF_ONLY.get(section, {})
            if key in hf_only:
                if hf_only[key] is not None and value != hf_only[key]:
                    raise ConvertError(f"hparams: {section}.{key} = {value!r} is not supported "
                                       f"(wavllm implements {hf_only[key]!r})")
                continue
            if key not in cfg[section]:
                raise ConvertError(f"hparams: unknown key {section}.{key}")
            if not _same_kind(value, cfg[section][key]):
                raise ConvertError(f"hparams: {section}.{key} must be {_kind_name(cfg[section][key])}, "
                                   f"got {value!r}")
            shaped = from_shapes.get(section, {})
            if key in shaped and shaped[key] != value:
                raise ConvertError(f"hparams: {section}.{key} = {value!r}, but the checkpoint's "
                                   f"tensor shapes say {shaped[key]!r}")
            cfg[section][key] = value
    for section, values in from_shapes.items():
        cfg[section].update(values)
    _check(cfg)
    return cfg


def _check(cfg):
    """The cross-field rules the loader would otherwise reject later, with the field named."""
    w, v, l = cfg["whisper"], cfg["wavlm"], cfg["llama"]
    if len(v["conv_stride"]) != len(v["conv_dim"]):
        raise ConvertError(f"wavlm.conv_stride has {len(v['conv_stride'])} entries but the "
                           f"checkpoint has {len(v['conv_dim'])} feature-extractor convs")
    for label, size, heads in (("whisper.d_model", w["d_model"], w["encoder_attention_heads"]),
                               ("wavlm.hidden_size", v["hidden_size"], v["num_attention_heads"]),
                               ("llama.dim", l["dim"], l["n_heads"])):
        if heads <= 0 or size % heads:
            raise ConvertError(f"{label} = {size} is not divisible by its {heads} attention heads")
    if (l["dim"] // l["n_heads"]) % 2:
        raise ConvertError("llama.dim / llama.n_heads must be even (rotary pairs)")


def _unique_keys(pairs):
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise ValueError(f"duplicate key {k!r}")
    return dict(pairs)


def _read_hparams(path):
    try:
        text = read_regular_file(path, 16 << 20).decode("utf-8")
        hparams = json.loads(text, object_pairs_hook=_unique_keys)
    except (OSError, ValueError, SafetensorsError) as e:
        raise ConvertError(f"{path}: cannot read hparams JSON ({e})") from None
    if not isinstance(hparams, dict):
        raise ConvertError(f"{path}: hparams JSON must be an object")
    return hparams


def _engine_check(cfg, shapes):
    """The engine's own checks: its config.json validation (every range rule) and its tensor
    list for that config (names and shapes, as the loader will check them), so a model it
    would refuse is never written, and nothing beyond what the model has is expanded."""
    spec = _spec(cfg)["tensors"]
    expected = {t["name"]: t["shape"] for t in spec}
    problems = [f"missing {t['name']} {t['shape']}" for t in spec if t["used"] and t["name"] not in shapes]
    problems += [f"unexpected {n} {s}" for n, s in shapes.items() if n not in expected]
    problems += [f"{n} is {s}, the config says {expected[n]}" for n, s in shapes.items()
                 if n in expected and s != expected[n]]
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise ConvertError("the checkpoint's tensors do not match the model the engine would load:\n  "
                           + "\n  ".join(shown))


_MODEL_FILE = re.compile(r"model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?|config\.json|tokenizer\.model")


def _publish(staging, out_dir):
    """Moves a finished conversion from `staging` into `out_dir`. A new or empty `out_dir` is
    replaced whole; an existing model folder gets the new model's files one by one and loses
    the old model's other shards; any other file in it stays. Anything else is refused before
    the conversion starts (see _check_out_dir)."""
    if not os.path.isdir(out_dir) or not os.listdir(out_dir):
        os.replace(staging, out_dir)
        return
    new = set(os.listdir(staging))
    for name in new:
        os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
    for name in os.listdir(out_dir):
        if name not in new and _MODEL_FILE.fullmatch(name) and name not in ("config.json", "tokenizer.model"):
            os.remove(os.path.join(out_dir, name))  # a previous conversion's shard: it would shadow ours
    os.rmdir(staging)


def _check_out_dir(out_dir):
    if not os.path.lexists(out_dir):
        return
    if not os.path.isdir(out_dir) or os.path.islink(out_dir):
        raise ConvertError(f"{out_dir}: exists and is not a directory")
    entries = os.listdir(out_dir)
    if entries and "config.json" not in entries:
        raise ConvertError(f"{out_dir}: holds files but no model (no config.json); choose a new or empty "
                           f"directory, or a model directory to replace")


def checkpoint_name(key):
    """The model-format name of a state-dict key (wrapper infixes and weight-norm
    parametrization names normalised)."""
    name = _WRAPPER_INFIX.sub(r"\1", key)
    for suffix, plain in _WEIGHT_NORM.items():
        if name.endswith(suffix):
            return name[: -len(suffix)] + plain
    return name


def _state_dict(checkpoint_path):
    ckpt = load_checkpoint(checkpoint_path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        keys = ", ".join(map(repr, list(ckpt)[:8])) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ConvertError(f"{checkpoint_path}: no 'model' state dict in the checkpoint (found {keys})")
    model = ckpt["model"]
    if not isinstance(model, dict):
        raise ConvertError(f"{checkpoint_path}: 'model' is a {type(model).__name__}, not a state dict")
    tensors = {}
    for key, value in model.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise ConvertError(f"{checkpoint_path}: model entry {key!r} is not a tensor")
        name = checkpoint_name(key)
        if name in tensors:
            raise ConvertError(f"{checkpoint_path}: {key} and another tensor both map to {name}")
        tensors[name] = value
    return tensors


def _check_tokenizer(path, vocab_size):
    """Fails before anything is written if the tokenizer is missing or does not fit. The
    piece count is checked when the sentencepiece module is installed."""
    try:
        import sentencepiece
    except ImportError:
        sentencepiece = None
    if not os.path.exists(path):
        raise ConvertError(f"{path}: tokenizer file not found")
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: the tokenizer is not a regular file (a FIFO, device or directory)")
    if os.path.getsize(path) > _MAX_TOKENIZER_BYTES:  # the engine refuses larger ones
        raise ConvertError(f"{path}: {os.path.getsize(path)} bytes is too large for a tokenizer.model "
                           f"(limit {_MAX_TOKENIZER_BYTES})")
    if sentencepiece is not None:
        try:
            pieces = sentencepiece.SentencePieceProcessor(model_file=path).get_piece_size()
        except (RuntimeError, OSError) as e:
            raise ConvertError(f"{path}: not a sentencepiece model ({e})") from None
        if pieces > vocab_size:
            raise ConvertError(f"{path}: {pieces} pieces do not fit the model's vocabulary of {vocab_size}")


def convert(checkpoint, out_dir, dtype="float32", shard_size="2GB", preset="wavllm-7b",
            hparams=None, tokenizer=None, log=print, quantize=None):
    """Library entry point of the command line; raises ConvertError/CheckpointError.
    quantize: None, or a format of `wavllm quantize` ("q8_0") the float model is then stored in."""
    if quantize is not None and quantize not in ("q8_0", "q4_0"):
        raise ConvertError(f"unknown --quantize {quantize!r} (this build has q8_0 and q4_0)")
    engine = _engine()
    try:
        dtype = engine.canonical_dtype(dtype)  # the engine's names and aliases: bf16, fp16, fp32...
    except engine.ArgumentError as e:
        raise ConvertError(f"--dtype: {e}") from None
    st_dtype = _DTYPES[dtype]
    try:
        shard_bytes = parse_size(shard_size)
    except SafetensorsError as e:
        raise ConvertError(f"--shard-size: {e}") from None
    if isinstance(hparams, str):
        hparams = _read_hparams(hparams)

    _check_out_dir(out_dir)
    tensors = _state_dict(checkpoint)
    try:
        cfg = derive_config({n: list(t.shape) for n, t in tensors.items()}, hparams, preset)
        _engine_check(cfg, {n: list(t.shape) for n, t in tensors.items()})
    except ConvertError as e:
        if hparams is None:  # the preset's hyperparameters are the likely cause
            raise ConvertError(f"{e}\n(with --preset {preset}'s hyperparameters: a checkpoint of other sizes "
                               "needs --hparams H.json, e.g. tests/fixtures/tiny/hparams.json for the "
                               "tiny test checkpoint)") from None
        raise
    if tokenizer:
        _check_tokenizer(tokenizer, cfg["llama"]["vocab_size"])

    def out_dtype(t):
        return st_dtype if t.dtype in ("F64", "F32", "F16", "BF16") else t.dtype

    # Written into a new folder beside out_dir and moved in only once complete: a conversion
    # that fails (bad tensor, disk full, Ctrl-C) leaves out_dir as it was.
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out_dir))}.partial-", dir=parent)
    try:
        entries = [(n, out_dtype(t), list(t.shape)) for n, t in tensors.items()]
        meta = {"format": "pt", "converted_from": os.path.basename(checkpoint)}
        files = write_sharded(staging, entries,
                              lambda n: to_dtype(tensors[n].numpy(), tensors[n].dtype, out_dtype(tensors[n])),
                              shard_bytes, meta, log)
        with open(os.path.join(staging, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
            f.write("\n")
        if tokenizer:
            shutil.copyfile(tokenizer, os.path.join(staging, "tokenizer.model"))
        if quantize:
            staging = _quantized(staging, parent, quantize)
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not tokenizer:
        log("note: no --tokenizer given; copy the model's tokenizer.model into "
            f"{out_dir} before using it")
    log(f"wrote {len(tensors)} tensors ({dtype}) to {out_dir}: {', '.join(files)}, config.json")
    return cfg


def _quantized(float_dir, parent, fmt):
    """The engine's `wavllm quantize` of the finished float folder, into a new staging folder
    (the float one is removed)."""
    engine = _engine()
    target = tempfile.mkdtemp(prefix=".quantized.partial-", dir=parent)
    try:
        engine.quantize_model(float_dir, target, fmt)
    except engine.Error as e:
        shutil.rmtree(target, ignore_errors=True)
        raise ConvertError(f"quantizing the converted model: {e}") from None
    shutil.rmtree(float_dir, ignore_errors=True)
    return target


def main(argv=None):
    # argparse's usage errors exit 2, as the wavllm command line's do.
    p = argparse.ArgumentParser(prog="wavllm convert",
                description="Convert a WavLLM fairseq checkpoint into a wavllm model directory.")
    p.add_argument("checkpoint", help="the fairseq training checkpoint (.pt)")
    p.add_argument("out_dir", help="model directory to write")
    p.add_argument("--dtype", default="float32", help="float32 (default), bfloat16 or float16 (aliases: fp32, bf16, fp16...)")
    p.add_argument("--shard-size", default="2GB", help="maximum tensor bytes per file (default 2GB)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--preset", default="wavllm-7b",
                   help="hyperparameters shapes do not tell (default wavllm-7b)")
    g.add_argument("--hparams", help="JSON with those hyperparameters instead of a preset")
    p.add_argument("--tokenizer", help="sentencepiece tokenizer.model to copy into OUT_DIR")
    p.add_argument("--quantize", help="store the decoder's projections quantized: q8_0 or q4_0 (docs/kernels.md)")
    a = p.parse_args(argv)
    try:
        convert(a.checkpoint, a.out_dir, a.dtype, a.shard_size, a.preset, a.hparams, a.tokenizer,
                quantize=a.quantize)
    except (ConvertError, CheckpointError, SafetensorsError) as e:
        print(f"wavllm.convert: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"wavllm.convert: error: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

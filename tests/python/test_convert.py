"""wavllm.convert: fairseq checkpoint -> model directory, without executing pickled code."""
import importlib
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
CKPT = os.path.join(FIX, "tiny_checkpoint.pt")
HPARAMS = os.path.join(FIX, "tiny", "hparams.json")


# The converter takes its tensor names from the compiled engine: the built package
# (PYTHONPATH=build/python) is what these tests run.
wavllm = pytest.importorskip("wavllm")
if getattr(wavllm, "_wavllm", None) is None:
    pytest.skip("the compiled engine (build/python) is not on PYTHONPATH", allow_module_level=True)
convert = importlib.import_module("wavllm.convert")
unpickle = importlib.import_module("wavllm._unpickle")
stio = importlib.import_module("wavllm.safetensors_io")
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(wavllm.__file__)))
REFERENCE = stio.read_file(os.path.join(FIX, "tiny", "model.safetensors"))


def run_cli(*args, pythonpath=PACKAGE_PARENT):
    env = dict(os.environ, PYTHONPATH=pythonpath)
    return subprocess.run([sys.executable, "-m", "wavllm.convert", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def assert_clean_failure(proc, *needles):
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "error:" in proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr


def torch_zip(path, pkl, storages=None, name="archive"):
    """A checkpoint laid out like torch.save's zip: <name>/data.pkl and <name>/data/<key>."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{name}/data.pkl", pkl)
        for key, raw in (storages or {}).items():
            z.writestr(f"{name}/data/{key}", raw)
        z.writestr(f"{name}/version", "3\n")
    return path


def test_float32_is_bit_identical_and_config_matches_demo(tmp_path):
    out = tmp_path / "model"
    proc = run_cli(CKPT, str(out), "--hparams", HPARAMS,
                   "--tokenizer", os.path.join(FIX, "tiny", "tokenizer.model"))
    assert proc.returncode == 0, proc.stderr
    got = stio.read_model_dir(str(out))
    assert sorted(got) == sorted(REFERENCE)  # infix stripped, nothing dropped or added
    for name, ref in REFERENCE.items():
        assert got[name].dtype == ref.dtype and got[name].shape == ref.shape, name
        assert got[name].tobytes() == ref.tobytes(), name
    with open(out / "config.json") as f, open(os.path.join(ROOT, "models", "demo", "config.json")) as g:
        assert json.load(f) == json.load(g)
    assert (out / "tokenizer.model").read_bytes() == \
        open(os.path.join(FIX, "tiny", "tokenizer.model"), "rb").read()
    _, meta, _ = stio.read_header(str(out / "model.safetensors"))
    assert meta["format"] == "pt"
    with open(out / "model.safetensors", "rb") as f:
        assert int.from_bytes(f.read(8), "little") % 8 == 0  # header padded to 8 bytes


@pytest.mark.parametrize("dtype,tag,rel", [("float16", "F16", 2.0 ** -11), ("bfloat16", "BF16", 2.0 ** -8)])
def test_half_precision_outputs_are_close(tmp_path, dtype, tag, rel):
    cfg = convert.convert(CKPT, str(tmp_path), dtype=dtype, hparams=HPARAMS, log=lambda *_: None)
    assert cfg["llama"]["dim"] == 64
    header, _, _ = stio.read_header(str(tmp_path / "model.safetensors"))
    assert {h["dtype"] for h in header.values()} == {tag}
    got = stio.read_model_dir(str(tmp_path), dtype="F32")
    for name, ref in REFERENCE.items():
        # Round to nearest: at most half a unit in the last place (subnormals: absolute).
        assert np.all(np.abs(got[name] - ref) <= rel * np.abs(ref) + 1e-7), name


def test_bf16_rounding_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(10000).astype(np.float32) * 1e3,
                        np.array([0.0, -0.0, np.inf, -np.inf, 3.3895314e38, 1e-40,
                                  1.00390625, 1.01171875], dtype=np.float32)])  # ties both ways
    ref = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(stio.f32_to_bf16(x), ref)
    nan = stio.f32_to_bf16(np.array([np.nan], dtype=np.float32))
    assert np.isnan(stio.bf16_to_f32(nan))[0]


def test_reads_what_torch_save_writes(tmp_path):
    torch = pytest.importorskip("torch")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = {
        "f32": base.clone(),
        "f16": base.half(),
        "bf16": (base / 7).to(torch.bfloat16),
        "i64": torch.tensor([1, -2, 3]),
        "transposed": base.t(),                 # strided view
        "slice": base[1:3, 2:5],                # offset into a shared storage
        "param": torch.nn.Parameter(torch.ones(3)),
        "scalar": torch.tensor(2.5),
    }
    path = tmp_path / "t.pt"
    torch.save({"model": sd, "optimizer": {"state": {}}}, path)
    ckpt = unpickle.load_checkpoint(str(path))
    for name, t in sd.items():
        lazy = ckpt["model"][name]
        assert list(lazy.shape) == list(t.shape), name
        if t.dtype == torch.bfloat16:
            ref = t.float().numpy()
            got = stio.bf16_to_f32(lazy.numpy())
        else:
            ref, got = t.detach().numpy(), lazy.numpy()
        assert got.dtype == ref.dtype and np.array_equal(got, ref), name


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("func,shown", [(os.system, "system"), (eval, "builtins.eval"),
                                        (subprocess.Popen, "subprocess.Popen")])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, func, shown):
    marker = tmp_path / "pwned"
    command = f"open({str(marker)!r}, 'w')" if func is eval else \
        (["touch", str(marker)] if func is subprocess.Popen else f"touch {marker}")
    pkl = pickle.dumps({"model": {"x": _Evil(func, command)}}, protocol=2)
    ckpt = torch_zip(tmp_path / "evil.pt", pkl)
    proc = run_cli(str(ckpt), str(tmp_path / "out"), "--hparams", HPARAMS)
    assert_clean_failure(proc, shown, "not allowed")
    assert not marker.exists()
    with pytest.raises(unpickle.UnsafePickleError, match=shown):
        unpickle.load_checkpoint(str(ckpt))
    assert not marker.exists()


def test_inert_classes_load_but_their_calls_are_refused(tmp_path):
    # NEWOBJ + BUILD of an unknown class (how omegaconf's DictConfig pickles) is inert data.
    pkl = (b"\x80\x02}q\x00X\x03\x00\x00\x00cfgq\x01cevil.mod\nThing\nq\x02)\x81q\x03}q\x04"
           b"X\x01\x00\x00\x00aK\x01sbs.")
    ckpt = unpickle.unpickle(pkl, archive=None)
    assert isinstance(ckpt["cfg"], unpickle.Inert)
    assert ckpt["cfg"].qualname == "evil.mod.Thing" and ckpt["cfg"].state == {"a": 1}
    # INST (protocol 0) of the same class with arguments is a call: refused.
    with pytest.raises(unpickle.UnsafePickleError, match="evil.mod.Thing"):
        unpickle.unpickle(b"(S'x'\nievil.mod\nThing\n.", archive=None)


def _fixture_parts():
    with zipfile.ZipFile(CKPT) as z:
        return {i.filename: z.read(i.filename) for i in z.infolist()}


def test_truncated_zip(tmp_path):
    raw = open(CKPT, "rb").read()
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(raw[: len(raw) // 2])
    assert_clean_failure(run_cli(str(bad), str(tmp_path / "o")), "trunc.pt", "not a torch zip")


def test_corrupt_storage_bytes(tmp_path):
    # Flip a byte of a stored storage payload: the zip's CRC catches it when it is read.
    raw = bytearray(open(CKPT, "rb").read())
    i = raw.find(_fixture_parts()["tiny_checkpoint/data/1"])
    raw[i] ^= 0xFF
    bad = tmp_path / "crc.pt"
    bad.write_bytes(bytes(raw))
    assert_clean_failure(run_cli(str(bad), str(tmp_path / "o"), "--hparams", HPARAMS),
                         "crc.pt", "data/1")


def test_corrupt_pickle(tmp_path):
    parts = _fixture_parts()
    pkl = parts.pop("tiny_checkpoint/data.pkl")
    storages = {k.rsplit("/", 1)[1]: v for k, v in parts.items() if "/data/" in k}
    bad = torch_zip(tmp_path / "pkl.pt", pkl[: len(pkl) // 3], storages, name="tiny_checkpoint")
    assert_clean_failure(run_cli(str(bad), str(tmp_path / "o")), "corrupt pickle")


def test_storage_view_past_the_end_is_refused(tmp_path):
    # A shape that claims more elements than its storage holds must not read out of bounds.
    parts = _fixture_parts()
    pkl = parts.pop("tiny_checkpoint/data.pkl")
    storages = {k.rsplit("/", 1)[1]: v for k, v in parts.items() if "/data/" in k}
    pkl = pkl.replace(b"K\x00K@K@K\x03\x87", b"K\x00KAK@K\x03\x87", 1)
    assert b"KAK@" in pkl
    bad = torch_zip(tmp_path / "view.pt", pkl, storages, name="tiny_checkpoint")
    with pytest.raises(unpickle.CheckpointError, match="reads past"):
        unpickle.load_checkpoint(str(bad))


def test_missing_model_key(tmp_path):
    bad = torch_zip(tmp_path / "nomodel.pt", pickle.dumps({"args": None, "cfg": {}}, protocol=2))
    assert_clean_failure(run_cli(str(bad), str(tmp_path / "o")), "no 'model' state dict",
                         "'args'")


def test_bad_options(tmp_path):
    assert_clean_failure(run_cli(CKPT, str(tmp_path / "o"), "--dtype", "int8"), "--dtype", "int8")
    assert_clean_failure(run_cli(CKPT, str(tmp_path / "o"), "--shard-size", "lots"), "--shard-size")
    assert_clean_failure(run_cli(str(tmp_path / "absent.pt"), str(tmp_path / "o")), "no such file")
    assert_clean_failure(run_cli(CKPT, str(tmp_path / "o"), "--preset", "wavllm-70b"), "wavllm-70b")


def test_hparams_contradicting_shapes(tmp_path):
    hp = json.load(open(HPARAMS))
    hp["llama"]["lora_r"] = 8
    path = tmp_path / "hp.json"
    path.write_text(json.dumps(hp))
    assert_clean_failure(run_cli(CKPT, str(tmp_path / "o"), "--hparams", str(path)),
                         "llama.lora_r", "shapes say 4")
    hp["llama"]["lora_r"] = 4
    hp["wavlm"]["do_stable_layer_norm"] = True
    path.write_text(json.dumps(hp))
    assert_clean_failure(run_cli(CKPT, str(tmp_path / "o"), "--hparams", str(path)),
                         "do_stable_layer_norm")


def test_preset_fills_what_shapes_do_not_tell(tmp_path):
    # The tiny model's shapes with the released preset: shape values win, heads etc. do not
    # divide the tiny sizes, and the converter says which field is wrong.
    with pytest.raises(convert.ConvertError, match="whisper.d_model = 64 is not divisible by its 20") as e:
        convert.convert(CKPT, str(tmp_path), log=lambda *_: None)
    # The default preset is the likely cause, and the message says what to pass instead.
    assert "with --preset wavllm-7b's hyperparameters" in str(e.value) and "--hparams H.json" in str(e.value)


def test_usage_errors_exit_2_and_dtype_names_are_the_engines(tmp_path):
    proc = run_cli(CKPT, str(tmp_path / "o"), "--bogus")
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr, proc.stderr
    assert run_cli().returncode == 2  # no arguments
    # The engine's dtype names and aliases, as the CLI takes them.
    cfg = convert.convert(CKPT, str(tmp_path / "bf16"), dtype="bf16", hparams=HPARAMS, log=lambda *_: None)
    assert cfg["llama"]["dim"] == 64
    header, _, _ = stio.read_header(os.path.join(tmp_path, "bf16", "model.safetensors"))
    assert "BF16" in {t["dtype"] for t in header.values()}


def test_sharding_index_maps_every_tensor(tmp_path):
    out = tmp_path / "sharded"
    stale = out / "model.safetensors"
    out.mkdir()
    stale.write_bytes(b"stale")  # a previous single-file conversion must not shadow the shards
    (out / "config.json").write_text("{}")
    proc = run_cli(CKPT, str(out), "--hparams", HPARAMS, "--shard-size", "300KB")
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists()
    index = json.load(open(out / "model.safetensors.index.json"))
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 3 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert sorted(index["weight_map"]) == sorted(REFERENCE)
    total = 0
    for shard in shards:
        header, _, _ = stio.read_header(str(out / shard))
        assert {n for n, f in index["weight_map"].items() if f == shard} == set(header)
        sizes = [h["data_offsets"][1] - h["data_offsets"][0] for h in header.values()]
        assert sum(sizes) <= 300_000 or len(sizes) == 1
        total += sum(sizes)
    assert index["metadata"]["total_size"] == total
    got = stio.read_model_dir(str(out))
    assert all(got[n].tobytes() == REFERENCE[n].tobytes() for n in REFERENCE)


def test_checkpoint_names_are_normalised():
    n = convert.checkpoint_name
    assert n("gpt_model.model_llama.layers.0._checkpoint_wrapped_module.attention.wq.weight") == \
        "gpt_model.model_llama.layers.0.attention.wq.weight"
    assert n("gpt_model.model_llama.layers.3.feed_forward._fsdp_wrapped_module.w1.weight") == \
        "gpt_model.model_llama.layers.3.feed_forward.w1.weight"
    p = "wavlm_encoder.model.encoder.pos_conv_embed.conv."
    assert n(p + "parametrizations.weight.original0") == p + "weight_g"
    assert n(p + "parametrizations.weight.original1") == p + "weight_v"
    assert n("audio_proj.weight") == "audio_proj.weight"


def test_safetensors_reader_rejects_bad_files(tmp_path):
    good = open(os.path.join(FIX, "tiny", "model.safetensors"), "rb").read()
    cases = {"short": good[:5], "header_past_end": (10**9).to_bytes(8, "little") + good[8:100],
             "truncated_data": good[:-100], "not_json": good[:8] + b"\xff" * (len(good) - 8)}
    for name, raw in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(raw)
        with pytest.raises(stio.SafetensorsError, match=name + ".safetensors"):
            stio.read_file(str(path))
    with pytest.raises(stio.SafetensorsError, match="no model.safetensors"):
        stio.read_model_dir(str(tmp_path))


def test_big_endian_checkpoint(tmp_path):
    # torch >= 2.1 records the writer's byte order; a big-endian machine's storages are
    # byte-swapped. Every fixture storage is float32: swap each 4-byte word.
    parts = _fixture_parts()
    pkl = parts.pop("tiny_checkpoint/data.pkl")
    storages = {k.rsplit("/", 1)[1]: np.frombuffer(v, "<f4").astype(">f4").tobytes()
                for k, v in parts.items() if "/data/" in k}
    path = torch_zip(tmp_path / "be.pt", pkl, storages, name="archive")
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("archive/byteorder", "big")
    convert.convert(str(path), str(tmp_path / "out"), hparams=HPARAMS, log=lambda *_: None)
    got = stio.read_model_dir(str(tmp_path / "out"))
    assert all(got[n].tobytes() == REFERENCE[n].tobytes() for n in REFERENCE)


def test_bad_tokenizer_fails_before_writing(tmp_path):
    pytest.importorskip("sentencepiece")
    bogus = tmp_path / "tokenizer.model"
    bogus.write_bytes(b"not a sentencepiece model")
    out = tmp_path / "out"
    proc = run_cli(CKPT, str(out), "--hparams", HPARAMS, "--tokenizer", str(bogus))
    assert_clean_failure(proc, "not a sentencepiece model")
    assert not out.exists()
    assert_clean_failure(run_cli(CKPT, str(out), "--hparams", HPARAMS, "--tokenizer",
                                 str(tmp_path / "absent.model")), "tokenizer file not found")


def test_writer_handles_scalars_and_empty_tensors(tmp_path):
    arrays = {"scalar": np.array(2.5, np.float32), "empty": np.zeros((0, 3), np.float32),
              "ids": np.array([[1, 2]], np.int64)}
    entries = [("scalar", "F32", []), ("empty", "F32", [0, 3]), ("ids", "I64", [1, 2])]
    path = str(tmp_path / "x.safetensors")
    stio.write_file(path, entries, arrays.__getitem__)
    got = stio.read_file(path)
    for k, v in arrays.items():
        assert got[k].shape == v.shape and got[k].dtype == v.dtype and np.array_equal(got[k], v), k
    with pytest.raises(stio.SafetensorsError, match="ids"):
        stio.write_file(str(tmp_path / "y.safetensors"), [("ids", "I64", [2, 1])], arrays.__getitem__)
    with pytest.raises(stio.SafetensorsError, match="refusing to overwrite"):
        stio.write_file(path, entries, arrays.__getitem__)
    assert sorted(os.listdir(tmp_path)) == ["x.safetensors"]  # no .partial left behind


def test_engine_runs_a_converted_model(tmp_path):
    # The C++ engine loads a sharded conversion and reproduces the fixture's greedy output.
    engine_model = wavllm.Model
    out = tmp_path / "sharded"
    convert.convert(CKPT, str(out), shard_size="500KB", hparams=HPARAMS,
                    tokenizer=os.path.join(FIX, "tiny", "tokenizer.model"), log=lambda *_: None)
    assert (out / "model.safetensors.index.json").exists()
    case = json.load(open(os.path.join(FIX, "cases.json")))["plants_asr"]
    result = engine_model(str(out)).generate(os.path.join(FIX, "audio", case["audio"]), case["prompt"],
                                             max_new_tokens=len(case["generated_ids"]))
    assert list(result.token_ids) == case["generated_ids"]


# --- round 2: hostile checkpoints and output folders ---------------------------------------

def _checkpoint_with(tmp_path, name, pkl):
    return str(torch_zip(tmp_path / name, pkl))


def test_deeply_nested_tuple_key_is_an_error_not_a_crash(tmp_path):
    # A 1 MB pickle: a tuple nested a million deep as a dict key crashed CPython's hashing.
    pkl = b"\x80\x02}(K\x01" + b"\x85" * 1_000_000 + b"K\x02u."
    assert_clean_failure(run_cli(_checkpoint_with(tmp_path, "deep.pt", pkl), str(tmp_path / "o")),
                         "nested deeper than 100")


def test_small_pickle_doing_unbounded_work_is_refused(tmp_path):
    # One 50 000-item list, then set(list) 5000 times: 2.5e8 element copies from 130 kB.
    pkl = (b"\x80\x02c__builtin__\nset\nq\x00]q\x01(" + b"K\x01" * 50000 + b"e(" +
           b"h\x00h\x01\x85R" * 5000 + b"l.")
    assert_clean_failure(run_cli(_checkpoint_with(tmp_path, "work.pt", pkl), str(tmp_path / "o")),
                         "more work than its")


def test_broadcast_view_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "expand.pt"
    torch.save({"model": {"w": torch.zeros(1).expand(4096, 4096)}}, path)  # one float, 64 MB as viewed
    with pytest.raises(unpickle.CheckpointError, match="broadcast view"):
        unpickle.load_checkpoint(str(path))


def _recompressed(tmp_path, name, method, padding):
    """torch.save's zip of a 4-float state dict with its storage member compressed by
    `method` and `padding` zero bytes after the 16 the tensor uses."""
    torch = pytest.importorskip("torch")
    plain = tmp_path / "plain.pt"
    torch.save({"model": {"w": torch.ones(4)}}, plain)
    out = tmp_path / name
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if "/data/" in info.filename:
                dst.writestr(info.filename, data + bytes(padding), compress_type=method)
            else:
                dst.writestr(info, data)
    return out


def test_compressed_members_are_read_only_as_far_as_the_tensor_needs(tmp_path):
    import tracemalloc
    # Deflate is read in bounded steps: 16 bytes of a 64 MB member cost kilobytes.
    deflated = _recompressed(tmp_path, "deflate.pt", zipfile.ZIP_DEFLATED, 64 << 20)
    assert deflated.stat().st_size < 1 << 20
    w = unpickle.load_checkpoint(str(deflated))["model"]["w"]
    tracemalloc.start()
    values = w.numpy()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert values.tolist() == [1.0, 1.0, 1.0, 1.0]
    assert peak < 1 << 20, f"{peak} bytes allocated to read 16"
    # bzip2 (a 785-byte member made 2.3 GB resident) is refused before any byte is inflated.
    bz = _recompressed(tmp_path, "bzip2.pt", zipfile.ZIP_BZIP2, 64 << 20)
    with pytest.raises(unpickle.CheckpointError, match="compressed"):
        unpickle.load_checkpoint(str(bz))


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_failed_conversion_leaves_the_existing_model_as_it_was(tmp_path):
    out = tmp_path / "model"
    assert run_cli(CKPT, str(out), "--hparams", HPARAMS).returncode == 0
    (out / "README.md").write_text("my notes")
    before = _snapshot(out)
    raw = bytearray(open(CKPT, "rb").read())
    raw[raw.find(_fixture_parts()["tiny_checkpoint/data/1"])] ^= 0xFF  # fails half way, at a CRC
    bad = tmp_path / "crc.pt"
    bad.write_bytes(bytes(raw))
    assert_clean_failure(run_cli(str(bad), str(out), "--hparams", HPARAMS), "crc.pt")
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crc.pt", "model"]  # no staging left
    # A successful conversion replaces the model's files and keeps the user's others.
    assert run_cli(CKPT, str(out), "--hparams", HPARAMS, "--dtype", "bfloat16").returncode == 0
    assert (out / "README.md").read_text() == "my notes"
    assert stio.read_header(str(out / "model.safetensors"))[0]["gpt_model.model_llama.norm.weight"]["dtype"] == "BF16"


def test_a_folder_that_is_not_a_model_is_refused(tmp_path):
    out = tmp_path / "work"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert_clean_failure(run_cli(CKPT, str(out), "--hparams", HPARAMS), "holds files but no model")
    assert _snapshot(out) == {"notes.txt": b"mine"}


@pytest.mark.parametrize("edit, needles", [
    (lambda h: h["llama"].update(norm_eps="small"), ("llama.norm_eps must be number", "'small'")),
    (lambda h: h["wavlm"].update(conv_stride=[5, "2", 2, 2, 2, 2, 2]), ("wavlm.conv_stride must be a list of integers",)),
    (lambda h: h["whisper"].update(encoder_attention_heads=2.5), ("whisper.encoder_attention_heads must be integer",)),
    (lambda h: h.update(system_prompt=5), ("system_prompt must be a string",)),
    (lambda h: h["wavlm"].update(conv_bias=1), ("wavlm.conv_bias must be boolean",)),
])
def test_hparams_of_the_wrong_type_name_the_field(tmp_path, edit, needles):
    hp = json.load(open(HPARAMS))
    edit(hp)
    path = tmp_path / "hp.json"
    path.write_text(json.dumps(hp))
    assert_clean_failure(run_cli(CKPT, str(tmp_path / "o"), "--hparams", str(path)), *needles)
    assert not (tmp_path / "o").exists()


def test_hparams_and_checkpoints_that_are_special_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_clean_failure(run_cli(CKPT, str(tmp_path / "o"), "--hparams", str(fifo)), "not a regular file")
    assert_clean_failure(run_cli(str(fifo), str(tmp_path / "o")), "not a torch zip")
    assert_clean_failure(run_cli(CKPT, str(tmp_path / "o"), "--hparams", HPARAMS, "--tokenizer", "/dev/zero"),
                         "not a regular file")
    dup = tmp_path / "dup.json"
    dup.write_text(open(HPARAMS).read().replace("{", '{"llama": {}, ', 1))
    assert_clean_failure(run_cli(CKPT, str(tmp_path / "o"), "--hparams", str(dup)), "duplicate key 'llama'")


def test_tensors_the_engine_would_not_load_are_refused_before_writing(tmp_path):
    torch = pytest.importorskip("torch")
    installed = convert
    state = {n: torch.from_numpy(a.copy()) for n, a in REFERENCE.items()}
    state["gpt_model.model_llama.extra.weight"] = torch.zeros(3)  # not a tensor of the model
    wq = "gpt_model.model_llama.layers.1.attention.wq.weight"
    state[wq] = torch.zeros(64, 63)  # layer 0 (which the config comes from) says [64, 64]
    path = tmp_path / "odd.pt"
    torch.save({"model": state}, path)
    with pytest.raises(installed.ConvertError) as info:
        installed.convert(str(path), str(tmp_path / "o"), hparams=json.load(open(HPARAMS)), log=lambda *_: None)
    assert "unexpected gpt_model.model_llama.extra.weight [3]" in str(info.value)
    assert f"{wq} is [64, 63], the config says [64, 64]" in str(info.value)
    assert not (tmp_path / "o").exists()


def test_engine_validation_refuses_what_the_engine_would_not_load(tmp_path):
    installed = convert
    hp = json.load(open(HPARAMS))
    hp["generation"] = {"num_beams": 17}
    with pytest.raises(installed.ConvertError, match="would not load.*num_beams"):
        installed.convert(CKPT, str(tmp_path / "o"), hparams=hp, log=lambda *_: None)
    assert not (tmp_path / "o").exists()


def test_without_the_compiled_engine_the_converter_says_what_it_needs(tmp_path):
    # The source tree's package has no compiled module: the tensor names are the engine's.
    proc = run_cli(CKPT, str(tmp_path / "o"), "--hparams", HPARAMS, pythonpath=os.path.join(ROOT, "python"))
    assert_clean_failure(proc, "tensor list from the compiled engine")
    assert not (tmp_path / "o").exists()


def test_every_size_the_spec_ties_to_a_config_field_is_read_from_the_shapes():
    # From the released preset (other sizes everywhere), the demo's sizes come back from the
    # checkpoint's shapes alone: the engine's declarations name the source of each value.
    demo = json.load(open(os.path.join(ROOT, "models", "demo", "config.json")))
    told = convert._shape_config({n: list(a.shape) for n, a in REFERENCE.items()}, convert.PRESETS["wavllm-7b"])
    for section, values in told.items():
        for key, value in values.items():
            assert demo[section][key] == value, (section, key)
    assert sorted(told["llama"]) == ["dim", "ffn_dim", "lora_r", "n_layers", "prompt_hidden", "vocab_size"]
    assert "num_conv_pos_embedding_groups" in told["wavlm"] and told["wavlm"]["conv_bias"] is False


def test_spec_converter_and_loader_agree(tmp_path):
    # One source: the converter writes exactly the tensors the engine declares for the config it
    # derives (unused ones included), with the declared shapes, and the loader takes them.
    out = tmp_path / "m"
    convert.convert(CKPT, str(out), hparams=HPARAMS, tokenizer=os.path.join(FIX, "tiny", "tokenizer.model"),
                    log=lambda *_: None)
    config = (out / "config.json").read_text()
    spec = json.loads(wavllm._wavllm.tensor_spec(config))
    written = {n: list(a.shape) for n, a in stio.read_file(str(out / "model.safetensors")).items()}
    assert written == {t["name"]: t["shape"] for t in spec["tensors"]}
    assert {t["name"] for t in spec["tensors"] if not t["used"]} == {"audio_proj.weight", "audio_proj.bias",
                                                                       "wavlm_encoder.model.masked_spec_embed"}
    # Only matrices may be stored quantized.
    assert all(len(t["shape"]) == 2 and t["name"].endswith(".weight") for t in spec["tensors"] if t["quantizable"])
    assert wavllm.Model(str(out)).config == json.loads(config)


def test_convert_quantize_writes_a_q8_0_model_the_engine_runs(tmp_path):
    out = tmp_path / "q8"
    convert.convert(CKPT, str(out), hparams=HPARAMS, tokenizer=os.path.join(FIX, "tiny", "tokenizer.model"),
                    log=lambda *_: None, quantize="q8_0")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quantization"] == {"format": "q8_0"}
    header = stio.read_header(str(out / "model.safetensors"))[0]
    assert header["gpt_model.model_llama.layers.0.feed_forward.w1.weight"]["dtype"] == "I8"
    assert header["gpt_model.model_llama.layers.0.feed_forward.w1.weight.scales"]["dtype"] == "F32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q8"]  # no staging folder left
    case = json.load(open(os.path.join(FIX, "cases.json")))["plants_asr"]
    result = wavllm.Model(str(out)).generate(os.path.join(FIX, "audio", case["audio"]), case["prompt"],
                                             max_new_tokens=len(case["generated_ids"]))
    assert list(result.token_ids) == case["generated_ids"]  # the tiny model's greedy answer survives 8 bits
    assert_clean_failure(run_cli(CKPT, str(tmp_path / "o"), "--hparams", HPARAMS, "--quantize", "q2"), "q2")

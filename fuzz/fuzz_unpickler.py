"""Mutation fuzzer for wavllm's restricted checkpoint unpickler (python/wavllm/_unpickle.py).

    /usr/bin/python3 fuzz/fuzz_unpickler.py [SECONDS] [--seed N] [--corpus DIR]

Mutates the seed pickles of fuzz/corpus/unpickler/ (byte flips, inserts, deletions, splices
of code-running globals) and unpickles each against the tiny fixture checkpoint's storages,
reading every tensor that comes back. It asserts that:
  * only the unpickler's own CheckpointError (or its subclass) is ever raised;
  * nothing runs code: an audit hook fails the run on any process, exec, import or
    file-deletion event while an input is being loaded (and blocks the event);
  * no input takes more than 2 seconds (no hang).
Exit status 0 when SECONDS (default 30) pass without a finding; a finding is written to
fuzz/out/unpickler/ and exits 1.
"""
import argparse
import codecs
import importlib
import os
import random
import signal
import sys
import time
import traceback
import types
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
pkg = types.ModuleType("wavllm_src")  # the module alone, not the package's compiled binding
pkg.__path__ = [os.path.join(ROOT, "python", "wavllm")]
sys.modules["wavllm_src"] = pkg
up = importlib.import_module("wavllm_src._unpickle")

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "tiny_checkpoint.pt")
# Globals whose call would run code: spliced into inputs to check they are always refused.
SPLICES = [b"cposix\nsystem\n", b"cos\nsystem\n", b"cbuiltins\neval\n", b"c__builtin__\nexec\n",
           b"csubprocess\nPopen\n", b"cbuiltins\ngetattr\n", b"cimportlib\nimport_module\n",
           b"\x8c\x05posix\x8c\x06system\x93", b"(S'touch /tmp/x'\ntR", b"R", b"\x81", b"b",
           b"ctorch._utils\n_rebuild_tensor_v2\n", b"Q", b"\x93", b"\x82\x01", b"o", b"i"]
FORBIDDEN_EVENTS = ("os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn",
                    "os.fork", "exec", "import", "compile", "os.remove", "os.unlink",
                    "shutil.rmtree", "ctypes.dlopen", "socket.connect")


class Finding(Exception):
    pass


_armed = False
_events = []


def _audit(event, args):
    if _armed and event.startswith(FORBIDDEN_EVENTS):
        _events.append(event)
        raise Finding(f"audit event {event} during unpickling")


def _alarm(signum, frame):
    raise Finding("an input took more than 2 s")


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        pos = rng.randrange(len(data) + 1)
        if op < 0.35 and data:
            data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op < 0.55 and data:
            data[min(pos, len(data) - 1)] = rng.choice([0, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op < 0.7:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op < 0.85 and data:
            del data[pos:pos + rng.randint(1, 16)]
        else:
            data[pos:pos] = rng.choice(SPLICES)
    return bytes(data)


def check_one(data, archive):
    """Unpickles `data`; returns None or 'refused'; raises Finding on a violation."""
    global _armed
    _events.clear()
    signal.alarm(2)
    _armed = True
    try:
        obj = up.unpickle(data, archive)
        model = obj.get("model") if isinstance(obj, dict) else None
        if isinstance(model, dict):
            for t in model.values():
                if isinstance(t, up.Tensor):
                    t.numpy()
        return None
    except up.UnsafePickleError:
        return "refused"
    except up.CheckpointError:
        return None
    except Finding:
        raise
    except BaseException as e:  # anything else is a bug in the unpickler
        raise Finding(f"{type(e).__name__} escaped: {e}\n{traceback.format_exc()}") from None
    finally:
        _armed = False
        signal.alarm(0)
        if _events:
            raise Finding(f"forbidden audit events {_events}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("seconds", nargs="?", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--corpus", default=os.path.join(HERE, "corpus", "unpickler"))
    a = p.parse_args(argv)
    seed = a.seed if a.seed is not None else int(time.time())
    rng = random.Random(seed)
    seeds = [open(os.path.join(a.corpus, f), "rb").read() for f in sorted(os.listdir(a.corpus))]
    if not seeds:
        print(f"fuzz_unpickler: no seeds in {a.corpus}", file=sys.stderr)
        return 1
    zf = zipfile.ZipFile(FIXTURE)
    archive = up._Archive(FIXTURE, zf, "tiny_checkpoint/", "little")
    for codec in ("raw-unicode-escape", "unicode-escape", "latin1", "ascii", "utf-8"):
        codecs.lookup(codec)  # pickle's text opcodes import these lazily: legitimate imports
    sys.addaudithook(_audit)
    signal.signal(signal.SIGALRM, _alarm)
    # Sanity: the seeds themselves load, and a call to os.system is refused.
    for s in seeds:
        check_one(s, archive)
    assert check_one(b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R.", archive) == "refused"
    runs = refused = 0
    deadline = time.monotonic() + a.seconds
    while time.monotonic() < deadline:
        data = mutate(rng, rng.choice(seeds))
        try:
            refused += check_one(data, archive) == "refused"
        except Finding as f:
            out = os.path.join(HERE, "out", "unpickler")
            os.makedirs(out, exist_ok=True)
            path = os.path.join(out, f"finding-{seed}-{runs}.pkl")
            with open(path, "wb") as fh:
                fh.write(data)
            print(f"fuzz_unpickler: FINDING after {runs} runs (seed {seed}): {f}\n  input: {path}")
            return 1
        runs += 1
    print(f"fuzz_unpickler: {runs} inputs in {a.seconds:g} s (seed {seed}), "
          f"{refused} refused as unsafe, no finding")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every command the README and docs/ show runs as written, against the demo model.

Commands are the lines of code blocks (indented or fenced) that start with a command word; a
fenced python block and a `>>>` session are run as Python. They run in a scratch directory that
links the checkout's models/, samples/, tests/ and eval/ (so the documented relative paths hold
and every output lands there), with the build's bin/ on PATH and its package on PYTHONPATH. The
few that cannot run here are listed below with the reason; a documented command that is neither
run nor listed fails the test.
"""
import os
import pathlib
import re
import subprocess
import sys

import pytest

import wavllm

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(wavllm.__file__).resolve().parents[2]  # <build>/python/wavllm
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_WORDS = ("wavllm", "eval/", "pip", "cmake", "ctest", "./setup.sh", "python3", "/usr/bin/python3", "PYTHONPATH=",
                 "build/bin/", "fuzz/")
NOT_RUN = {
    "./setup.sh demo": "the set-up itself (installs packages, builds); CI runs ./setup.sh test",
    "./setup.sh test": "runs this very suite",
    "wavllm convert wavllm_checkpoint.pt models/wavllm-7b --tokenizer tokenizer.model --dtype bf16":
        "needs the released checkpoint, which is not downloadable here",
    "wavllm transcribe --model models/wavllm-7b speech.flac": "needs that converted model",
    "python3 -m venv --system-site-packages ~/wavllm-env && ~/wavllm-env/bin/pip install --no-build-isolation .":
        "tests/python/test_install.py installs the wheel into a fresh venv",
    "cmake --install build --prefix /usr/local": "tests/python/test_install.py installs into a scratch prefix",
    "cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPYTHON_EXECUTABLE=/usr/bin/python3":
        "the build this suite runs from",
    "cmake --build build": "the build this suite runs from",
    "ctest --test-dir build --output-on-failure": "the C++ suite, run beside this one",
    "PYTHONPATH=build/python /usr/bin/python3 -m pytest -q tests/python eval/tests": "this suite",
    "wavllm serve -m models/demo --max-batch 8": "serves until stopped: tests/python/test_serve.py starts, queries "
                                                 "and stops servers",
    "wavllm serve -m models/demo": "serves until stopped (as above)",
    'wavllm serve -m models/wavllm-7b --max-batch 8 --max-queue 64 --api-key "$KEY" -t 2':
        "needs the converted released model, and serves until stopped",
}


def blocks(text):
    """(kind, lines) of each code block: kind is the fence's language, or "" for indented ones."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            out.append((fence.group(1), lines[i + 1:end]))
            i = end + 1
        elif lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            end = i
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            out.append(("", [line[4:] for line in lines[i:end]]))
            i = end
        else:
            i += 1
    return out


def documented():
    """(document, kind, text) for each command line (continuations joined) and Python snippet."""
    found = []
    for doc in DOCS:
        for kind, lines in blocks(doc.read_text()):
            if kind == "python":
                found.append((doc.name, "python", "\n".join(lines)))
                continue
            code = [line for line in lines if line.strip()]
            if code and code[0].startswith(">>> "):
                found.append((doc.name, "python", "\n".join(line[4:] for line in code if line[:4] in (">>> ", "... "))))
                continue
            if kind not in ("", "sh", "bash") or not code or not code[0].startswith(COMMAND_WORDS):
                continue
            joined = re.sub(r"\\\n\s*", " ", "\n".join(code))
            found += [(doc.name, "shell", re.sub(r"\s+#.*$", "", line).strip()) for line in joined.splitlines()]
    return found


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    d = tmp_path_factory.mktemp("docs")
    for name in ("models", "samples", "tests", "eval"):
        (d / name).symlink_to(ROOT / name)
    (d / "build").symlink_to(BUILD)
    return d


def test_every_documented_command_is_run_or_excused():
    commands = [text for _, kind, text in documented() if kind == "shell"]
    assert len([c for c in commands if c not in NOT_RUN]) >= 15  # the README's command list, at least
    assert set(NOT_RUN) <= set(commands), f"excused but no longer documented: {set(NOT_RUN) - set(commands)}"
    assert any(kind == "python" for _, kind, _ in documented())


@pytest.mark.parametrize("doc,kind,text", [d for d in documented() if d[2] not in NOT_RUN],
                         ids=lambda v: v[:60] if isinstance(v, str) else None)
def test_documented_command_runs(scratch, doc, kind, text):
    env = dict(os.environ, PATH=f"{BUILD / 'bin'}:{os.environ['PATH']}", PYTHONPATH=str(BUILD / "python"))
    env.pop("WAVLLM_MODEL", None)
    args = [sys.executable, "-c", text] if kind == "python" else ["bash", "-c", text]
    r = subprocess.run(args, cwd=scratch, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{doc}: {text}\nexit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"

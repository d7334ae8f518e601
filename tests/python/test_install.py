"""Installed as a library: `cmake --install` with a find_package(wavllm) consumer project, and
the wheel in a fresh virtual environment, each used from another directory.

Both reuse the CMake build this suite runs against (build/python on PYTHONPATH): the wheel's
setup.py builds into WAVLLM_CMAKE_BUILD_DIR when given, so no second full build is needed here.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

import wavllm

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = pathlib.Path(wavllm.__file__).resolve().parent
BUILD = PACKAGE.parents[1]  # <build>/python/wavllm
DEMO = ROOT / "models" / "demo"
PLANTS = ROOT / "tests" / "fixtures" / "audio" / "plants.wav"
EXPECTED = json.loads((ROOT / "tests" / "fixtures" / "cases.json").read_text())["plants_asr"]["text"]

pytestmark = pytest.mark.skipif(not (BUILD / "CMakeCache.txt").exists(),
                                reason="needs the package of a CMake build tree (PYTHONPATH=build/python)")


def run(args, cwd, env=None, **kwargs):
    """args run in cwd without the build tree on PYTHONPATH; CalledProcessError shows stderr."""
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONPATH", None)
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, **kwargs)
    assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_cmake_package_and_a_find_package_consumer(tmp_path):
    prefix = tmp_path / "prefix"
    run(["cmake", "--install", BUILD, "--prefix", prefix], cwd=tmp_path)
    for installed in ("bin/wavllm", "lib/cmake/wavllm/wavllmConfig.cmake", "include/wavllm/pipeline/model.h",
                      "lib/libwavllm_pipeline.a", "lib/wavllm/python/wavllm/convert.py"):
        assert (prefix / installed).exists(), installed

    # A separate project: find_package(wavllm), link wavllm::wavllm, include every installed header.
    consumer = tmp_path / "consumer"
    run(["cmake", "-S", ROOT / "tests" / "install" / "consumer", "-B", consumer, "-G", "Ninja",
         "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_PREFIX_PATH={prefix}"], cwd=tmp_path)
    run(["cmake", "--build", consumer], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run([consumer / "consumer", DEMO, PLANTS], cwd=elsewhere) == EXPECTED + "\n"

    # The installed CLI runs, and `convert` uses the installed package, not the build tree's.
    wavllm_bin = prefix / "bin" / "wavllm"
    assert run([wavllm_bin, "--version"], cwd=elsewhere).startswith(f"wavllm {wavllm.__version__} ")
    assert run([wavllm_bin, "transcribe", "--model", DEMO, "--max-new-tokens", "10", PLANTS], cwd=elsewhere) == EXPECTED + "\n"
    show = tmp_path / "show-pythonpath"
    show.write_text("#!/bin/sh\necho \"$PYTHONPATH\"\n")
    show.chmod(0o755)
    shown = run([wavllm_bin, "convert", "--help"], cwd=elsewhere, env=dict(os.environ, WAVLLM_PYTHON=str(show)))
    assert shown.split(":")[0].strip() == str(prefix / "lib" / "wavllm" / "python")


def test_wheel_in_a_fresh_virtual_environment(tmp_path):
    env = dict(os.environ, WAVLLM_CMAKE_BUILD_DIR=str(BUILD))
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, ROOT], cwd=ROOT, env=env)
    (wheel,) = dist.glob("wavllm-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=tmp_path)
    # Offline: numpy, the one dependency, is Debian's (system site packages).
    run([venv / "bin" / "pip", "install", "--no-index", wheel], cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run([venv / "bin" / "python", "-c", "import wavllm, wavllm.convert; print(wavllm.__file__)"], cwd=elsewhere)
    assert where.startswith(str(venv)), where
    wavllm_bin = venv / "bin" / "wavllm"
    assert run([wavllm_bin, "--version"], cwd=elsewhere).startswith(f"wavllm {wavllm.__version__} ")
    assert run([wavllm_bin, "transcribe", "--model", DEMO, "--max-new-tokens", "10", PLANTS], cwd=elsewhere) == EXPECTED + "\n"
    # The console script's convert: the tiny fixture checkpoint into a model the CLI then runs.
    fixtures = ROOT / "tests" / "fixtures"
    run([wavllm_bin, "convert", fixtures / "tiny_checkpoint.pt", "converted", "--hparams", fixtures / "tiny" / "hparams.json",
         "--tokenizer", fixtures / "tiny" / "tokenizer.model"], cwd=elsewhere)
    assert run([wavllm_bin, "transcribe", "--model", "converted", "--max-new-tokens", "10", PLANTS],
               cwd=elsewhere) == EXPECTED + "\n"


def test_pip_install_from_the_checkout(tmp_path):
    """The README's command: pip builds the checkout itself (offline, Debian's setuptools)."""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=tmp_path)
    run([venv / "bin" / "pip", "install", "--no-build-isolation", "--no-index", ROOT], cwd=tmp_path,
        env=dict(os.environ, WAVLLM_CMAKE_BUILD_DIR=str(BUILD)))
    where = run([venv / "bin" / "python", "-c", "import wavllm; print(wavllm.__file__, wavllm.__version__)"], cwd=tmp_path)
    assert where.startswith(str(venv)) and where.split()[1] == wavllm.__version__, where
    assert run([venv / "bin" / "wavllm", "tasks"], cwd=tmp_path).startswith("Each task sends")

"""A short run of the restricted unpickler's mutation fuzzer (fuzz/fuzz_unpickler.py)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_unpickler_fuzz_smoke():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "fuzz", "fuzz_unpickler.py"), "3",
                           "--seed", "7"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no finding" in proc.stdout

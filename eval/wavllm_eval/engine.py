"""The wavllm package for the eval scripts: the installed one (or PYTHONPATH's), else the build
tree's beside this checkout (WAVLLM_BUILD_DIR, default build/), so a script runs from a checkout."""
import os
import sys

try:
    import wavllm
except ImportError:
    _ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.join(_ROOT, os.environ.get("WAVLLM_BUILD_DIR", "build"), "python"))
    import wavllm

__all__ = ["wavllm"]

"""Makes eval/ importable (wavllm_eval, reference) when pytest runs from the repository root."""
import os
import sys

EVAL = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if EVAL not in sys.path:
    sys.path.insert(0, EVAL)

"""Eager PyTorch reference of WavLLM inference (see model.py), for debugging the engine stage
by stage and as the baseline of the end-to-end benchmark."""
from .frontend import log_mel, read_wav16k
from .model import Reference, Result

__all__ = ["Reference", "Result", "log_mel", "read_wav16k"]

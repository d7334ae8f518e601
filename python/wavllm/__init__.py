"""wavllm: a C++ inference engine for WavLLM, with Python tools (wavllm.convert).

Research binding (docs/model.md §9), numpy in and out:

    import wavllm
    samples = wavllm.load_audio("speech.flac")          # float32 mono 16 kHz
    mel, frames = wavllm.log_mel(samples)               # [parts, 80, 3000], [parts]
    m = wavllm.Model("models/wavllm", device="cpu", dtype="float32", threads=None)
    m.transcribe("speech.flac")                         # -> str
    r = m.generate(samples, "Translate the audio clip into German.", max_new_tokens=64)
    r.text, r.token_ids, r.timings, r.real_time_factor
    opts = m.generation_options                         # wavllm.GenerationOptions (config.json's)
    opts.num_beams = 4
    m.generate(samples, wavllm.transcribe_instruction(), options=opts)

Audio arguments are a path or a 1-D C-contiguous float32 array at 16 kHz; other arrays raise
ValueError (float64 too: convert with .astype(numpy.float32)). Engine failures raise
wavllm.Error, a RuntimeError: bad files, weights or configs as wavllm.Error itself, an option or
argument outside its rule (a generation option, a dtype, a device, a language) as
wavllm.ArgumentError (also a ValueError), and a request beyond a limit (memory, context, audio
length) as wavllm.ResourceError. Model methods release the GIL and
one Model may be shared by several threads. Generation options left as None take the model's
config.json "generation" values (greedy for the released model).

The converter (`python -m wavllm.convert`) needs numpy, not torch; it takes the tensor names
from the compiled engine and says so when it is missing. The package imports without the
compiled module (a missing `_wavllm` is reported when an engine name is used, not on import).
"""
import importlib

try:
    _wavllm = importlib.import_module(__name__ + "._wavllm")
except ModuleNotFoundError as e:
    if e.name != __name__ + "._wavllm":
        raise
    _wavllm = None

__all__ = ["Error", "ArgumentError", "ResourceError", "Model", "GenerationOptions", "GenerationResult", "load_audio",
           "log_mel", "set_threads",
           "transcribe_instruction", "translate_instruction", "speaker_verification_instruction",
           "emotion_instruction", "question_instruction"]

if _wavllm is None:
    def __getattr__(name):
        if name in __all__:
            raise ImportError(f"wavllm.{name} needs the compiled engine (wavllm/_wavllm*.so): build "
                              "the project and put build/python on PYTHONPATH")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
else:
    from ._wavllm import (ArgumentError, Error, GenerationOptions, GenerationResult, ResourceError, emotion_instruction, load_audio, log_mel,
                          question_instruction, set_threads, speaker_verification_instruction,
                          transcribe_instruction, translate_instruction)

    class Model(_wavllm.Model):
        """A loaded WavLLM model directory (config.json, model*.safetensors, tokenizer.model).

        Model(path, device="cpu", dtype="float32", threads=None); threads=None uses every core.
        The thread count belongs to this model: each call runs with it and the process's
        setting (set_threads) is left as it was. The task helpers take generate()'s keyword
        options and return the text; generate() returns a GenerationResult."""

        def transcribe(self, audio, **options):
            return self.generate(audio, transcribe_instruction(), **options).text

        def translate(self, audio, to="German", **options):
            return self.generate(audio, translate_instruction(to), **options).text

        def ask(self, audio, question, **options):
            return self.generate(audio, question_instruction(question), **options).text

        def __repr__(self):
            return f"wavllm.Model({self.directory!r}, device={self.device!r}, dtype={self.dtype!r})"

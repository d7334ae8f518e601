"""wavllm: a C++ inference engine for WavLLM, with Python tools (wavllm.convert).

Research binding (docs/python.md), numpy in and out:

    import wavllm
    samples = wavllm.load_audio("speech.flac")          # float32 mono 16 kHz
    mel, frames = wavllm.log_mel(samples)               # [parts, 80, 3000], [parts]
    m = wavllm.Model("models/demo")                     # device="cpu", dtype="auto", threads=None
    m.transcribe("speech.flac")                         # -> str
    r = m.generate(samples, "Translate the audio clip into German.", max_new_tokens=64)
    r.text, r.token_ids, r.timings, r.real_time_factor
    opts = m.generation_options                         # wavllm.GenerationOptions (config.json's)
    opts.num_beams = 4
    m.generate(samples, wavllm.transcribe_instruction(), options=opts)

Audio arguments are a path (str or os.PathLike) or a 1-D C-contiguous float32 array at 16 kHz;
other arrays raise ValueError (float64 too: convert with .astype(numpy.float32)). Engine failures
raise wavllm.Error, a RuntimeError: bad files, weights or configs as wavllm.Error itself, an
option or argument outside its rule (a generation option, a dtype, a device, a language) as
wavllm.ArgumentError (also a ValueError), and a request beyond a limit (memory, context, audio
length) as wavllm.ResourceError. Model methods release the GIL and one Model may be shared by
several threads. Generation options left as None take the model's config.json "generation"
values (greedy for the released model).

The converter (`python -m wavllm.convert`, or `wavllm convert`) needs numpy, not torch; it takes
the tensor names from the compiled engine and says so when it is missing. The package imports
without the compiled module (a missing `_wavllm` is reported when an engine name is used).
"""
import importlib

try:
    _wavllm = importlib.import_module(__name__ + "._wavllm")
except ModuleNotFoundError as e:
    if e.name != __name__ + "._wavllm":
        raise
    _wavllm = None

__all__ = ["Error", "ArgumentError", "ResourceError", "Model", "GenerationOptions", "GenerationResult", "load_audio",
           "log_mel", "set_threads", "Segment", "voice_activity", "speech_pieces", "canonical_dtype", "translation_languages",
           "transcribe_instruction", "translate_instruction", "speaker_verification_instruction",
           "emotion_instruction", "question_instruction"]

if _wavllm is None:
    def __getattr__(name):
        if name in __all__:
            raise ImportError(f"wavllm.{name} needs the compiled engine (wavllm/_wavllm*.so): build "
                              "the project and put build/python on PYTHONPATH, or pip install the project")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
else:
    from ._wavllm import (ArgumentError, Error, GenerationOptions, GenerationResult, ResourceError, Segment,  # noqa: F401
                          canonical_dtype, emotion_instruction, load_audio, question_instruction, set_threads,
                          speaker_verification_instruction, speech_pieces, transcribe_instruction,
                          translate_instruction, translation_languages, voice_activity)

    __version__ = _wavllm.__version__

    def log_mel(audio, n_mels=80):
        """Whisper's log-mel spectrogram of `audio` (a path or float32 samples at 16 kHz), per 30-s
        part: (float32 array [parts, n_mels, 3000], int64 array [parts] of valid frames)."""
        return _wavllm.log_mel(audio, n_mels)

    class Model(_wavllm.Model):
        """A loaded WavLLM model directory (config.json, model*.safetensors, tokenizer.model).

        Model(path, device="cpu", dtype="auto", threads=None, whisper_margin=None)

        path: the directory, a str or os.PathLike (pathlib.Path).
        device: "cpu", "cuda" or "cuda:N".
        dtype: "auto" (as the weights are stored: a bfloat16 folder runs in bfloat16), "float32",
            "bfloat16", or "float16" (CUDA only); aliases such as "bf16" and "fp32" are accepted.
        threads: intra-op CPU threads of this model's calls; None or 0 uses every core. The
            process's setting (set_threads) is left as it was.
        whisper_margin: beyond the reference, Whisper encodes only the audio plus this many
            seconds (0 to 30) of its 30-s window; None (the default) encodes the whole window as
            the reference does. Faster on short audio; its fidelity cost is in eval/RESULTS.md.

        Every audio argument is a path or a 1-D float32 numpy array at 16 kHz. The task helpers
        (transcribe, translate, ask) return the text; generate() returns a GenerationResult."""

        def __init__(self, path, device="cpu", dtype="auto", threads=None, whisper_margin=None):
            self._loaded = False  # a failed load leaves no engine object behind to describe
            super().__init__(path, device, dtype, threads, whisper_margin)
            self._loaded = True

        def generate(self, audio, instruction, *, options=None, on_text=None, **fields):
            """The answer to `instruction` about `audio`, as a GenerationResult.

            options: a GenerationOptions (default: the model's config.json values, greedy for
                the released model); each keyword in `fields` is a GenerationOptions field
                (max_new_tokens, max_steps, temperature, top_p, top_k, seed, num_beams,
                length_penalty, repetition_penalty, no_repeat_ngram_size, stop,
                return_step_logits) set over it; None leaves a field as it is.
            on_text: called with each piece of text as it is decoded (streaming).
            An unknown keyword is a TypeError; a value outside its rule a wavllm.ArgumentError."""
            return super().generate(audio, instruction, options=options, on_text=on_text, **fields)

        def segments(self, audio, instruction, *, max_segment=30.0, vad_aggressiveness=2, encoder_batch=1, options=None,
                     **fields):
            """`audio` as pieces of speech, each one request with `instruction`: an iterator of
            Segment (start, end, text, token_ids, token_logprobs, avg_logprob) that decodes a piece
            per step, with duration, pieces and speech_seconds. WebRTC's voice detector finds the
            speech (vad_aggressiveness 0 to 3: how much it drops as non-speech); pieces are at most
            max_segment seconds, cut at pauses; silence is never decoded. encoder_batch pieces at a
            time share one pass of the Whisper encoder (1 to 64). Keywords as generate()'s."""
            return super().segments(audio, instruction, max_segment=max_segment, vad_aggressiveness=vad_aggressiveness,
                                    encoder_batch=encoder_batch, options=options, **fields)

        def _text_or_segments(self, audio, instruction, segments, max_segment, fields):
            if segments:  # the iterator is also the info (duration, pieces, speech_seconds)
                run = self.segments(audio, instruction, max_segment=max_segment, **fields)
                return run, run
            return self.generate(audio, instruction, **fields).text

        def transcribe(self, audio, *, segments=False, max_segment=30.0, **fields):
            """The transcription of `audio` (str); keywords as generate()'s. segments=True: as
            faster-whisper, (an iterator of Segment, info) over pieces of speech (see segments());
            info has duration, pieces and speech_seconds."""
            return self._text_or_segments(audio, transcribe_instruction(), segments, max_segment, fields)

        def translate(self, audio, to="German", *, segments=False, max_segment=30.0, **fields):
            """The translation of `audio` into the language `to` (see translation_languages());
            segments=True as for transcribe()."""
            return self._text_or_segments(audio, translate_instruction(to), segments, max_segment, fields)

        def ask(self, audio, question, **fields):
            """The answer to `question` (with its answer options, as the Gaokao test writes them)."""
            return self.generate(audio, question_instruction(question), **fields).text

        def whisper_encoder(self, audio):
            """Whisper encoder output per 30-s part: a list of float32 arrays [T, d]."""
            return super().whisper_encoder(audio)

        def wavlm_hidden_states(self, audio):
            """WavLM's input to layer 0 and the output of every layer: a list of float32 [T, h]."""
            return super().wavlm_hidden_states(audio)

        def audio_embeddings(self, audio):
            """The fused audio embeddings the decoder reads: float32 [T, dim]."""
            return super().audio_embeddings(audio)

        def prompt_ids(self, instruction):
            """(left, right, orig) token id lists of the prompt around the audio (docs/model.md §6)."""
            return super().prompt_ids(instruction)

        def prompt_scale(self, instruction):
            """The prompt adapter's LoRA scale for `instruction`: float32 [dim]."""
            return super().prompt_scale(instruction)

        def __repr__(self):
            if not self.__dict__.get("_loaded"):
                return "wavllm.Model(<not loaded>)"
            return f"wavllm.Model({self.directory!r}, device={self.device!r}, dtype={self.dtype!r})"

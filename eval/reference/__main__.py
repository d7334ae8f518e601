"""Runs the eager reference on one utterance and prints the text, the token ids and the
per-stage wall times as JSON:

    cd eval && /usr/bin/python3 -m reference MODEL_DIR AUDIO.wav "instruction" [--max-new-tokens N]

AUDIO is a 16 kHz WAV, or a .npy float32 16 kHz waveform (the engine's wavllm.load_audio
output, for audio that needs resampling).
"""
import argparse
import json
import sys

import numpy as np
import torch

from . import Reference, read_wav16k


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m reference", description=__doc__.split("\n")[0])
    p.add_argument("model_dir")
    p.add_argument("audio")
    p.add_argument("instruction")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1...)")
    p.add_argument("--dump", metavar="STAGES.safetensors",
                   help="also write every stage in the layout of tests/fixtures/stages/")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        samples = np.load(a.audio).astype(np.float32) if a.audio.endswith(".npy") else read_wav16k(a.audio)
        ref = Reference.load(a.model_dir, device=a.device)
    except (OSError, ValueError, EOFError) as e:
        print(f"reference: error: {e}", file=sys.stderr)
        return 1
    r = ref.run(samples, a.instruction, max_new_tokens=a.max_new_tokens)
    if a.dump:
        r.save_stages(a.dump, {"audio": a.audio, "prompt": a.instruction, "text": r.text})
    json.dump({"text": r.text, "token_ids": r.generated_ids, "audio_frames": int(r.audio_embeds.shape[0]),
               "timings_s": r.timings}, sys.stdout, indent=1, ensure_ascii=False)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

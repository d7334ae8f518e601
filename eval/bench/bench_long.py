#!/usr/bin/python3
"""A long recording through `wavllm transcribe -osrt`: real-time factor and peak memory.

    eval/bench/bench_long.py --model models/demo [--minutes 60] [--threads 2]

The recording is synthetic (eval/wavllm_eval/synthetic.py: espeak-ng sentences with pauses and a
60-s silence, 44.1 kHz stereo, mild noise). The CLI runs as a child process; its peak resident
set comes from the kernel's accounting of that child (wait4), beside a 3-s file's run for
the fixed cost (libraries, model) and the decoded audio's size (16 kHz float).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

EVAL = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(EVAL)
sys.path.insert(0, EVAL)
from wavllm_eval import synthetic  # noqa: E402


def run(cmd):
    """(seconds, peak RSS in MB) of one child run of `cmd` (the child's own rusage, from wait4)."""
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd}: exit {os.waitstatus_to_exitcode(status)}")
    return seconds, usage.ru_maxrss / 1024


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--wavllm", default=os.path.join(ROOT, os.environ.get("WAVLLM_BUILD_DIR", "build"), "bin", "wavllm"))
    args = p.parse_args(argv)
    missing = synthetic.missing_tools()
    if missing:
        print(f"bench_long: needs {', '.join(missing)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        # Made in a process of its own: a child's peak RSS includes its parent's pages at fork,
        # so this process stays small.
        made = subprocess.run([sys.executable, "-c", "import json, sys; sys.path.insert(0, sys.argv[1]); "
                               "from wavllm_eval import synthetic; "
                               "path, s, _ = synthetic.recording(sys.argv[2], float(sys.argv[3]), seed=5); "
                               "print(json.dumps([path, len(s)]))", EVAL, tmp, str(args.minutes * 60)],
                              check=True, capture_output=True, text=True)
        path, sentences = json.loads(made.stdout)
        base = [args.wavllm, "transcribe", "-m", args.model, "-t", str(args.threads), "-np"]
        _, short_peak = run(base + ["--segment", os.path.join(ROOT, "samples", "plants.wav")])
        seconds, peak = run(base + ["-osrt", path])
        duration = args.minutes * 60
        audio_mb = duration * 16000 * 4 / 2**20
        cues = open(path + ".srt", encoding="utf-8").read().count(" --> ")
    print(f"{args.minutes:g} min ({sentences} sentences) -> {cues} pieces in {seconds:.1f} s: "
          f"real-time factor {seconds / duration:.4f}; peak RSS {peak:.0f} MB = {short_peak:.0f} MB for a "
          f"3-s file + {audio_mb:.0f} MB of decoded audio + {peak - short_peak - audio_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Server throughput: chat requests with audio through `wavllm serve` at several concurrency
levels, each level's requests beside the same requests sent one at a time (concurrency 1), in
one run on one server process.

    build/bin/wavllm make-random-model --config eval/bench/configs/1b_decoder.json --dtype bf16 \
        --tokenizer ../shared/data/tokenizer.model --out /tmp/wavllm-1b-dec
    /usr/bin/python3 eval/bench/bench_serve.py --model /tmp/wavllm-1b-dec [--levels 1,2,4,8,16] \
        [--requests 16] [--max-tokens 128] [--audio tests/fixtures/audio/short.wav] [--threads 2] [--json OUT]

configs/1b_decoder.json is the 1B-class decoder of configs/1b.json (LLaMA 2048 x 22 layers) with
the demo's tiny encoders, so that the figures are the decoder's: the encoders run once per
request whatever the batch. Per level it prints generated tokens per second and requests per
second over the level's wall time, the decoder passes' own tokens per second and mean batch
(from /metrics), and the p50/p95 request latency; the ratio column divides tokens/s by level 1's.
"""
import argparse
import base64
import http.client
import json
import os
import pathlib
import platform
import statistics
import subprocess
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cpu_name():
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


class Server:
    def __init__(self, binary, model, threads, max_batch, log):
        self.log = log
        self.proc = subprocess.Popen([binary, "serve", "-m", model, "--port", "0", "-t", str(threads), "--max-batch",
                                      str(max_batch), "--max-queue", "256", "--no-prints"],
                                     stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        while "wavllm: ready" not in pathlib.Path(log).read_text():
            if self.proc.poll() is not None:
                raise SystemExit(pathlib.Path(log).read_text())
            time.sleep(0.1)
        self.port = int(pathlib.Path(log).read_text().split("http://127.0.0.1:")[1].split(" ")[0])

    def post(self, body):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3600)
        c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status != 200:
            raise RuntimeError(f"{r.status}: {data[:300]}")
        return json.loads(data)

    def metrics(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln and ln[0] != "#"}

    def stop(self):
        self.proc.terminate()
        self.proc.wait(600)


def level(server, body, concurrency, count):
    """count requests over `concurrency` connections: wall seconds, latencies, generated tokens."""
    latencies, tokens, lock, todo = [], [], threading.Lock(), list(range(count))

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            t0 = time.perf_counter()
            out = server.post(body)
            with lock:
                latencies.append(time.perf_counter() - t0)
                tokens.append(out["usage"]["completion_tokens"])

    before = server.metrics()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    after = server.metrics()
    rows = after["wavllm_decode_rows_total"] - before["wavllm_decode_rows_total"]
    steps = after["wavllm_decode_steps_total"] - before["wavllm_decode_steps_total"]
    step_seconds = after["wavllm_decode_seconds_total"] - before["wavllm_decode_seconds_total"]
    latencies.sort()
    return {"concurrency": concurrency, "requests": count, "wall_s": wall, "tokens": sum(tokens),
            "tokens_per_s": sum(tokens) / wall, "requests_per_s": count / wall,
            "decode_tokens_per_s": rows / step_seconds if step_seconds else 0, "mean_batch": rows / steps if steps else 0,
            "p50_s": statistics.median(latencies), "p95_s": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--binary", default=str(ROOT / "build" / "bin" / "wavllm"))
    ap.add_argument("--levels", default="1,2,4,8,16")
    ap.add_argument("--requests", type=int, default=16, help="requests per level (at least the level's concurrency)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--audio", default=str(ROOT / "tests" / "fixtures" / "audio" / "short.wav"))
    ap.add_argument("--prompt", default="Describe the audio clip.")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    a = ap.parse_args()
    levels = [int(x) for x in a.levels.split(",")]
    audio = base64.b64encode(pathlib.Path(a.audio).read_bytes()).decode()
    body = json.dumps({"model": "bench", "temperature": 0, "max_tokens": a.max_tokens,
                       "messages": [{"role": "user", "content": [
                           {"type": "text", "text": a.prompt},
                           {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}]}]})
    server = Server(a.binary, a.model, a.threads, max(levels), "/tmp/wavllm-bench-serve.log")
    try:
        server.post(body)  # warm-up: the instruction's LoRA scale is cached from here on
        results = [level(server, body, c, max(a.requests, c)) for c in levels]
    finally:
        server.stop()
    base = results[0]["tokens_per_s"]
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, load average before: {os.getloadavg()[0]:.2f}; "
          f"model {a.model}; {a.threads} threads; max_tokens {a.max_tokens}; audio {os.path.basename(a.audio)}")
    print("| concurrent | requests | tokens | tokens/s | x level 1 | requests/s | decode tokens/s | mean batch "
          "| p50 s | p95 s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['concurrency']} | {r['requests']} | {r['tokens']} | {r['tokens_per_s']:.2f} | "
              f"{r['tokens_per_s'] / base:.2f} | {r['requests_per_s']:.3f} | {r['decode_tokens_per_s']:.2f} | "
              f"{r['mean_batch']:.2f} | {r['p50_s']:.2f} | {r['p95_s']:.2f} |")
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""`wavllm serve` end to end on the demo model, on loopback only: the official OpenAI Node client
(npm package `openai`, pinned in tests/server/package-lock.json) through every endpoint, 32
concurrent mixed requests against the same requests run one by one through the CLI, a bounded
load, the queue's 429, a client leaving mid-stream, SIGTERM's drain, the API key and the limits.
The Node tests skip with a message when node/npm or the npm registry are not at hand.
"""
import base64
import http.client
import itertools
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import wavllm

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(wavllm.__file__).resolve().parents[2]
WAVLLM = BUILD / "bin" / "wavllm"
DEMO = ROOT / "models" / "demo"
AUDIO = ROOT / "tests" / "fixtures" / "audio"
PLANTS, SHORT = AUDIO / "plants.wav", AUDIO / "short.wav"
INSTRUCTION = "Describe the audio clip."


def request(port, method, path, body=None, headers=None, timeout=120):
    """(status, headers, body) of one HTTP request to 127.0.0.1:port."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


class Server:
    """A `wavllm serve` process on a free loopback port; stop() sends SIGTERM and returns its status."""

    def __init__(self, tmp, *args):
        self.log = pathlib.Path(tmp) / f"serve-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen([WAVLLM, "serve", "-m", DEMO, "--port", "0", "-t", "2", *map(str, args)],
                                     stdout=subprocess.DEVNULL, stderr=self.log.open("w"))
        deadline = time.monotonic() + 120
        while "wavllm: ready" not in self.text():
            assert self.proc.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.05)
        self.port = int(self.text().split("http://127.0.0.1:")[1].split(" ")[0])

    def text(self):
        return self.log.read_text() if self.log.exists() else ""

    def request(self, method, path, body=None, headers=None, timeout=120):
        return request(self.port, method, path, body, headers, timeout)

    def metrics(self, headers=None):
        status, _, data = self.request("GET", "/metrics", headers=headers)
        assert status == 200
        out = {}
        for line in data.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@pytest.fixture
def serve(tmp_path):
    started = []

    def start(*args):
        started.append(Server(tmp_path, *args))
        return started[-1]

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def chat_body(audio, instruction=INSTRUCTION, max_tokens=12, stream=False):
    part = {"type": "input_audio",
            "input_audio": {"data": base64.b64encode(pathlib.Path(audio).read_bytes()).decode(), "format": "wav"}}
    return json.dumps({"model": "demo", "temperature": 0, "max_tokens": max_tokens, "stream": stream,
                       "messages": [{"role": "user", "content": [{"type": "text", "text": instruction}, part]}]})


def cli_text(*args):
    r = subprocess.run([WAVLLM, *map(str, args), "-m", DEMO, "--json", "--temperature", "0", "-t", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["text"]


def expected_text(request):
    kind, audio = request["kind"], request["audio"]
    if kind == "transcribe":
        return cli_text("transcribe", audio)
    if kind == "translate":
        return cli_text("translate", "--to", "German", audio)
    return cli_text("run", "--prompt", request["instruction"], "--max-new-tokens", request["max_tokens"], audio)


@pytest.fixture(scope="module")
def node_client(tmp_path_factory):
    """A directory with the pinned openai package installed and the client script."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("the OpenAI client tests need node and npm (Node.js 18 or later)")
    d = tmp_path_factory.mktemp("node")
    for f in ("package.json", "package-lock.json", "openai_client.mjs"):
        shutil.copy(ROOT / "tests" / "server" / f, d / f)
    try:
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=d, check=True, timeout=300,
                       capture_output=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"npm could not install the openai package ({e})")
    return d


def run_client(node_client, scenario, config):
    path = node_client / f"{scenario}.json"
    path.write_text(json.dumps(config))
    r = subprocess.run(["node", "openai_client.mjs", scenario, path], cwd=node_client, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_the_openai_client_through_every_endpoint(serve, node_client):
    s = serve("--api-key", "sekret")
    out = run_client(node_client, "api", {"base_url": f"http://127.0.0.1:{s.port}/v1", "api_key": "sekret",
                                          "model": "demo", "audio": str(PLANTS), "instruction": INSTRUCTION})
    assert out["models"] == ["demo"]
    transcript = cli_text("transcribe", PLANTS)
    assert out["transcription"] == transcript
    assert out["transcription_text"] == transcript + "\n"
    assert "00:00:00,000 --> 00:00:03," in out["transcription_srt"]  # one piece of speech, timed
    verbose = out["transcription_verbose"]
    assert verbose["duration"] == pytest.approx(3.397, abs=1e-3) and len(verbose["segments"]) == 1
    assert verbose["segments"][0]["end"] <= verbose["duration"]
    assert out["translation"] == cli_text("translate", "--to", "German", PLANTS)
    chat = cli_text("run", "--prompt", INSTRUCTION, "--max-new-tokens", 12, PLANTS)
    assert out["chat"]["content"] == chat and out["stream"]["content"] == chat
    assert out["chat"]["finish_reason"] == out["stream"]["finish_reason"] == "length"
    assert out["chat"]["usage"]["completion_tokens"] == 12 and out["chat"]["logprobs"] == 12
    assert out["stream"]["chunks"] >= 3  # role, text, end
    errors = out["errors"]
    assert errors["no_audio"]["status"] == 400 and "input_audio" in errors["no_audio"]["message"]
    assert errors["bad_format"]["status"] == 400 and "response_format" in errors["bad_format"]["message"]
    assert errors["not_audio"]["status"] == 400 and "audio" in errors["not_audio"]["message"]
    assert errors["wrong_key"] == {"status": 401, "name": "AuthenticationError",
                                   "message": "401 missing or wrong API key (Authorization: Bearer KEY)"}
    assert s.stop() == 0


def curl(*args):
    """curl's output and the HTTP status (written last by -w)."""
    r = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *map(str, args)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    body, _, status = r.stdout.rpartition("\n")
    return int(status), body


def test_curl_transcribes_streams_and_gets_errors(serve, tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("the curl tests need curl")
    s = serve("--api-key", "k3y")
    url, key = f"http://127.0.0.1:{s.port}", "Authorization: Bearer k3y"
    status, text = curl("-H", key, "-F", f"file=@{PLANTS}", "-F", "model=demo", "-F", "response_format=text",
                        f"{url}/v1/audio/transcriptions")
    assert status == 200 and text == cli_text("transcribe", PLANTS) + "\n"
    body = tmp_path / "chat.json"
    body.write_text(chat_body(SHORT, max_tokens=8, stream=True))
    status, events = curl("-N", "-H", key, "-H", "Content-Type: application/json", "--data-binary", f"@{body}",
                          f"{url}/v1/chat/completions")
    data = [line[6:] for line in events.splitlines() if line.startswith("data: ")]
    assert status == 200 and data[-1] == "[DONE]", events
    streamed = "".join(json.loads(d)["choices"][0]["delta"].get("content", "") for d in data[:-1] if json.loads(d)["choices"])
    assert streamed == cli_text("run", "--prompt", INSTRUCTION, "--max-new-tokens", 8, SHORT)
    status, error = curl("-H", "Authorization: Bearer wrong", f"{url}/v1/models")
    assert status == 401 and json.loads(error)["error"]["type"] == "authentication_error"
    status, error = curl("-H", key, "-F", "model=demo", f"{url}/v1/audio/transcriptions")
    assert status == 400 and "file" in json.loads(error)["error"]["message"], error
    assert curl(f"{url}/health")[0] == 200
    assert s.stop() == 0


def test_32_concurrent_mixed_requests_get_the_clis_texts(serve, node_client):
    distinct = [{"kind": k, "audio": str(a), "instruction": i, "max_tokens": n}
                for a in (PLANTS, SHORT)
                for k, i, n in (("transcribe", "", 0), ("translate", "", 0), ("chat", INSTRUCTION, 12),
                                ("chat", "What is the speaker's emotion?", 20))]
    requests = distinct * 4
    random.Random(0).shuffle(requests)
    s = serve("--max-batch", 8)
    out = run_client(node_client, "mixed", {"base_url": f"http://127.0.0.1:{s.port}/v1", "model": "demo",
                                            "requests": requests})
    expected = {json.dumps(r, sort_keys=True): expected_text(r) for r in distinct}
    assert len(out["texts"]) == 32
    for r, text in zip(requests, out["texts"]):
        assert text == expected[json.dumps(r, sort_keys=True)], r
    m = s.metrics()
    assert m["wavllm_completed_requests_total"] == 32
    assert m["wavllm_decode_rows_total"] / m["wavllm_decode_steps_total"] > 1.5  # they were batched
    assert s.stop() == 0


def test_a_bounded_load_gets_only_answers_and_429s(serve, node_client):
    s = serve("--max-batch", 4, "--max-queue", 4)
    out = run_client(node_client, "load", {"base_url": f"http://127.0.0.1:{s.port}/v1", "model": "demo",
                                           "load": {"count": 200, "connections": 16,
                                                    "request": {"audio": str(SHORT), "instruction": INSTRUCTION,
                                                                "max_tokens": 2}}})
    statuses = out["statuses"]
    assert set(statuses) <= {"200", "429"} and sum(statuses.values()) == 200, statuses
    assert statuses.get("200", 0) >= 8
    m = s.metrics()
    assert m["wavllm_completed_requests_total"] == statuses["200"]
    if statuses.get("429"):
        assert m['wavllm_requests_total{endpoint="/v1/chat/completions",status="429"}'] == statuses["429"]
    assert s.stop() == 0


def test_a_full_queue_answers_429_with_retry_after(serve):
    s = serve("--max-batch", 1, "--max-queue", 0)
    results = []

    def one():
        results.append(s.request("POST", "/v1/chat/completions", chat_body(PLANTS, max_tokens=0),
                                 {"Content-Type": "application/json"}))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r[0] for r in results)
    assert codes[0] == 200 and codes[-1] == 429, codes
    refused = next(r for r in results if r[0] == 429)
    assert refused[1]["Retry-After"] == "1"
    assert json.loads(refused[2])["error"]["type"] == "rate_limit_error"
    assert s.stop() == 0


def read_events(response):
    """Server-Sent Events' data lines as they come, up to [DONE] (the connection may stay open)."""
    while True:
        line = response.readline()
        if not line:
            return
        if line.startswith(b"data: "):
            yield line[6:].strip()
            if line.strip() == b"data: [DONE]":
                return


def open_stream(port, audio=PLANTS, max_tokens=0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", "/v1/chat/completions", chat_body(audio, max_tokens=max_tokens, stream=True),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == "text/event-stream"
    return c, r


def test_a_client_leaving_mid_stream_frees_its_row(serve):
    s = serve()
    c, r = open_stream(s.port)
    events = read_events(r)
    next(events)  # the role
    assert "content" in json.loads(next(events))["choices"][0]["delta"]  # text is coming
    c.sock.shutdown(2)
    c.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = s.metrics()
        if m["wavllm_cancelled_requests_total"] == 1 and m["wavllm_running_requests"] == 0:
            break
        time.sleep(0.05)
    assert m["wavllm_cancelled_requests_total"] == 1 and m["wavllm_running_requests"] == 0, m
    assert m["wavllm_completed_requests_total"] == 0
    # The freed row serves the next request.
    status, _, body = s.request("POST", "/v1/chat/completions", chat_body(SHORT, max_tokens=3),
                                {"Content-Type": "application/json"})
    assert status == 200 and json.loads(body)["usage"]["completion_tokens"] == 3
    assert s.stop() == 0


def test_a_client_leaving_before_its_answer_frees_its_place(serve):
    """A request answered in one piece (no stream) is cancelled too when its client goes: here
    while it waits behind four others for the only row."""
    s = serve("--max-batch", "1")
    body = chat_body(PLANTS, max_tokens=0)
    ahead = [threading.Thread(target=s.request, args=("POST", "/v1/chat/completions", body,
                                                       {"Content-Type": "application/json"})) for _ in range(4)]
    for t in ahead:
        t.start()

    def until(condition):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = s.metrics()
            if condition(m):
                return m
            time.sleep(0.01)
        raise AssertionError(m)

    until(lambda m: m["wavllm_running_requests"] + m["wavllm_queue_length"] == 4)
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
    c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    until(lambda m: m["wavllm_running_requests"] + m["wavllm_queue_length"] + m["wavllm_completed_requests_total"] == 5)
    c.sock.shutdown(2)
    c.close()
    m = until(lambda m: m["wavllm_cancelled_requests_total"] == 1)
    assert m["wavllm_completed_requests_total"] < 4, m  # it left while others were still ahead of it
    for t in ahead:
        t.join()
    m = until(lambda m: m["wavllm_completed_requests_total"] == 4)  # counted just after the answers
    assert m["wavllm_cancelled_requests_total"] == 1, m
    assert m["wavllm_running_requests"] == 0 and m["wavllm_queue_length"] == 0, m
    assert s.stop() == 0


def test_sigterm_drains_then_exits_0(serve):
    s = serve()
    c, r = open_stream(s.port)
    events = read_events(r)
    next(events)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    try:  # refused while draining: 503, or no connection once the listener closed
        status, _, body = s.request("GET", "/health", timeout=5)
        assert status == 503 and json.loads(body)["error"]["message"] == "the server is shutting down"
    except (ConnectionError, OSError):
        pass
    rest = list(events)
    assert rest[-1] == b"[DONE]"  # the request in flight was answered to its end
    assert json.loads(rest[-2])["choices"][0]["finish_reason"] in ("stop", "length")
    assert s.proc.wait(60) == 0
    assert "draining" in s.text()


def test_api_key_limits_and_bad_requests(serve, tmp_path):
    s = serve("--api-key", "k3y", "--max-body-mb", 1, "--max-audio-seconds", 2)
    key = {"Authorization": "Bearer k3y"}
    assert s.request("GET", "/health")[0] == 200  # open without the key
    for path in ("/v1/models", "/metrics"):
        status, _, body = s.request("GET", path)
        assert status == 401 and json.loads(body)["error"]["type"] == "authentication_error"
        assert s.request("GET", path, headers={"Authorization": "Bearer k3"})[0] == 401
        assert s.request("GET", path, headers=key)[0] == 200
    json_key = {**key, "Content-Type": "application/json"}
    cases = [
        (b"x" * (2 << 20), 413, "max-body-mb"),
        (chat_body(PLANTS), 413, "limit"),  # 3.4 s of audio over --max-audio-seconds 2
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 400, "JSON object"),
        (json.dumps({"messages": []}), 400, "messages"),
        (chat_body(SHORT).replace('"data": "', '"data": "!!'), 400, "base64"),
        (chat_body(SHORT).replace('"max_tokens": 12', '"max_tokens": -3'), 400, "max_tokens"),
        (chat_body(SHORT).replace('"max_tokens": 12', '"max_tokens": 2, "n": 2'), 400, "n must be 1"),
        (chat_body(SHORT).replace('"temperature": 0', '"temperature": "hot"'), 400, "temperature"),
        (chat_body(SHORT).replace('"role": "user"', '"role": "assistant"'), 400, "user"),
    ]
    for body, status, words in cases:
        got, _, answer = s.request("POST", "/v1/chat/completions", body, json_key)
        error = json.loads(answer)["error"]
        assert got == status and words in error["message"], (status, got, error)
    assert s.request("POST", "/v1/audio/transcriptions", b"{}", json_key)[0] == 400  # not a form
    status, _, body = s.request("GET", "/v1/nothing", headers=key)
    assert status == 404 and "no endpoint" in json.loads(body)["error"]["message"]
    assert s.stop() == 0


@pytest.mark.parametrize("args, message", [
    (["--max-batch", "0"], "--max-batch"),
    (["--port", "70000"], "--port"),
    (["--max-body-mb", "0"], "--max-body-mb"),
    (["--encoder-batch", "9"], "--encoder-batch"),
    (["extra"], "positional"),
])
def test_bad_serve_options_exit_2(args, message):
    r = subprocess.run([WAVLLM, "serve", "-m", DEMO, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_a_port_in_use_is_an_error(serve):
    s = serve()
    r = subprocess.run([WAVLLM, "serve", "-m", DEMO, "--port", str(s.port)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "cannot listen" in r.stderr, r.stderr
    assert s.stop() == 0


def test_batch_parallel_writes_what_one_at_a_time_writes(tmp_path):
    rows = ["id\taudio\tn_frames\tprompt\ttgt_text\twith_speech"]
    for i, (name, prompt) in enumerate(itertools.product(
            ["plants.wav", "short.wav", "museum.wav", "stereo44k.wav", "phone8k.flac", "missing.wav"],
            [INSTRUCTION, "What is the speaker's emotion?"])):
        rows.append(f"item{i}\t{name}\t0\t{prompt}\tref\tTrue")
    manifest = tmp_path / "m.tsv"
    manifest.write_text("\n".join(rows) + "\n")
    lines = {}
    for parallel in (1, 4):
        out = tmp_path / f"p{parallel}.jsonl"
        r = subprocess.run([WAVLLM, "batch", "-m", DEMO, "--audio-dir", AUDIO, manifest, "--out", out, "-t", "2",
                            "--max-new-tokens", "8", "--temperature", "0", "--parallel", str(parallel)],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 1, r.stderr  # the missing file's two items fail, the rest run
        lines[parallel] = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines[1]) == len(lines[4]) == 12
    for one, batched in zip(lines[1], lines[4]):
        assert one["id"] == batched["id"]
        assert one.get("token_ids") == batched.get("token_ids") and one.get("text") == batched.get("text")
        assert ("error" in one) == ("error" in batched) == ("missing" in one["audio"])
    r = subprocess.run([WAVLLM, "batch", "-m", DEMO, "--audio-dir", AUDIO, manifest, "--out", tmp_path / "b.jsonl",
                        "--parallel", "2", "--num-beams", "2"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--parallel" in r.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_replicas_behind_nginx(serve, tmp_path):
    """The server keeps no state between requests: replicas behind a load balancer scale it."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        pytest.skip("needs nginx (Debian's nginx-light; ./setup.sh installs it)")
    replicas = [serve(), serve()]
    port = free_port()
    temp = " ".join(f"{kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    upstream = " ".join(f"server 127.0.0.1:{r.port};" for r in replicas)
    conf = tmp_path / "nginx.conf"
    conf.write_text(("user root;\n" if os.geteuid() == 0 else "") + f"""
worker_processes 1;
pid {tmp_path / 'nginx.pid'};
error_log {tmp_path / 'error.log'};
events {{ worker_connections 64; }}
http {{
  access_log off; {temp}
  client_max_body_size 64m;
  upstream wavllm {{ {upstream} }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://wavllm; proxy_http_version 1.1; proxy_buffering off; proxy_read_timeout 300s; }}
  }}
}}
""")
    proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        expected = cli_text("run", "--prompt", INSTRUCTION, "--max-new-tokens", 12, PLANTS)
        results = []
        threads = [threading.Thread(target=lambda: results.append(request(
            port, "POST", "/v1/chat/completions", chat_body(PLANTS), {"Content-Type": "application/json"})))
                   for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r[0] for r in results] == [200] * 8
        assert all(json.loads(r[2])["choices"][0]["message"]["content"] == expected for r in results)
        c, r = open_stream(port, max_tokens=5)
        assert list(read_events(r))[-1] == b"[DONE]"
        c.close()
        served = [rep.metrics()["wavllm_completed_requests_total"] for rep in replicas]
        assert sum(served) == 9 and min(served) >= 1, served  # both replicas answered
    finally:
        proc.terminate()
        proc.wait(30)
    assert all(rep.stop() == 0 for rep in replicas)


def test_timed_transcriptions_are_the_clis_pieces(serve, tmp_path):
    """verbose_json and srt cut the audio into the CLI's pieces of speech, every piece one
    request of the batch: the same times, texts and tokens as `wavllm transcribe -oj -osrt`."""
    story = AUDIO / "story.wav"
    s = serve("--max-batch", 4)
    boundary = "wavllmtest"

    def form(fmt):
        data = story.read_bytes()
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\n{fmt}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"story.wav\"\r\n"
                f"Content-Type: audio/wav\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        status, _, answer = s.request("POST", "/v1/audio/transcriptions", body,
                                      {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert status == 200, answer
        return answer.decode()

    verbose = json.loads(form("verbose_json"))
    srt = form("srt")
    r = subprocess.run([WAVLLM, "transcribe", "-m", DEMO, "-t", "1", "--temperature", "0", "-oj", "-osrt",
                        "-of", tmp_path / "cli", story], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    cli = json.loads((tmp_path / "cli.json").read_text())
    assert len(cli["segments"]) >= 2  # several pieces, decoded together by the server
    assert [(g["start"], g["end"], g["text"], g["tokens"]) for g in verbose["segments"]] == \
        [(g["start"], g["end"], g["text"], g["token_ids"]) for g in cli["segments"]]
    assert srt == (tmp_path / "cli.srt").read_text()
    assert s.stop() == 0

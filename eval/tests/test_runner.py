"""eval/run_task.py and eval/gaokao.py on small manifests over the fixture audio and the demo model
(whose greedy outputs are known: tests/fixtures/cases.json)."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import gaokao
import run_task
import wavllm
from wavllm_eval import metrics

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
CASES = json.loads((FIXTURES / "cases.json").read_text())
DEMO = str(ROOT / "models" / "demo")
EVAL = ROOT / "eval"
SHARED_GAOKAO = ROOT.parent / "shared" / "data" / "wavllm_test_data" / "gaokao.tsv"


def write_tsv(path, header, rows):
    path.write_text("\t".join(header) + "\n" + "\n".join("\t".join(r) for r in rows) + "\n")
    return str(path)


def read_items(out):
    return [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]


def test_read_manifest_by_column_name(tmp_path):
    # en2de.tsv's column order: tgt_text before prompt.
    tsv = write_tsv(tmp_path / "m.tsv", ["id", "audio", "n_frames", "tgt_text", "prompt", "with_speech"],
                    [["0", "a.wav", "5", "Hallo.", "Translate the audio clip into German.", "True"]])
    (row,) = run_task.read_manifest(tsv)
    assert row["prompt"] == "Translate the audio clip into German." and row["tgt_text"] == "Hallo."
    with pytest.raises(run_task.ManifestError, match="no column prompt"):
        run_task.read_manifest(write_tsv(tmp_path / "bad.tsv", ["id", "audio", "tgt_text"], [["0", "a", "b"]]))
    with pytest.raises(run_task.ManifestError, match=r"bad2.tsv:3: duplicate id '0'"):
        run_task.read_manifest(write_tsv(tmp_path / "bad2.tsv", ["id", "audio", "prompt", "tgt_text"],
                                         [["0", "a", "p", "t"], ["0", "b", "p", "t"]]))


def test_resolve_audio_drops_leading_folders(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "asr.flac").write_bytes(b"")
    ref_path = "SpeechT5/WavLLM/fairseq/examples/wavllm/test_data/audio/asr.flac"
    assert run_task.resolve_audio(str(tmp_path), ref_path) == str(tmp_path / "audio" / "asr.flac")
    assert run_task.resolve_audio(str(tmp_path), "audio/none.flac") is None


def test_manifest_paths_never_leave_the_audio_root_and_a_bom_is_no_column(tmp_path):
    root = tmp_path / "root"
    (root / "audio").mkdir(parents=True)
    (root / "audio" / "a.wav").write_bytes(b"")
    (tmp_path / "secret.wav").write_bytes(b"")
    assert run_task.resolve_audio(str(root), "../secret.wav") is None
    assert run_task.resolve_audio(str(root), str(tmp_path / "secret.wav")) is None
    assert run_task.resolve_audio(str(root), "/elsewhere/audio/a.wav") == str(root / "audio" / "a.wav")
    assert run_task.resolve_audio(str(root), "x/../../audio/a.wav") == str(root / "audio" / "a.wav")
    tsv = tmp_path / "bom.tsv"
    tsv.write_bytes(b"\xef\xbb\xbfid\taudio\tprompt\ttgt_text\n0\ta.wav\tp\tt\n")
    assert run_task.read_manifest(str(tsv))[0]["id"] == "0"
    os.mkfifo(tmp_path / "fifo.tsv")
    with pytest.raises(run_task.ManifestError, match="not a regular file"):
        run_task.read_manifest(str(tmp_path / "fifo.tsv"))


def test_run_task_never_writes_into_a_folder_of_the_users(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.md").write_text("my report")
    tsv = write_tsv(tmp_path / "m.tsv", ["id", "audio", "prompt", "tgt_text"], [["0", "plants.wav", "p", "t"]])
    assert run_task.main([tsv, "--audio-dir", str(FIXTURES / "audio"), "--model", DEMO,
                          "--out", str(out)]) == 2
    assert (out / "report.md").read_text() == "my report" and sorted(os.listdir(out)) == ["report.md"]


def test_run_task_scores_and_reports(tmp_path):
    cases = ["plants_asr", "museum_sqa", "short_er"]
    header = ["id", "audio", "n_frames", "prompt", "tgt_text", "with_speech"]
    # Each reference is the fixture's known output, so the expected score is known exactly.
    rows = [[c, CASES[c]["audio"], str(CASES[c]["samples_16k"]), CASES[c]["prompt"], CASES[c]["text"], "True"]
            for c in cases]
    asr = write_tsv(tmp_path / "mixed.tsv", header, rows)
    out = tmp_path / "out"
    rc = run_task.main([asr, "--audio-dir", str(FIXTURES / "audio"), "--model", DEMO,
                        "--out", str(out), "--max-new-tokens", "10", "--task", "asr", "--threads", "1"])
    assert rc == 0
    items = read_items(out)
    assert [it["id"] for it in items] == cases
    for it in items:
        assert it["error"] is None and it["text"] == CASES[it["id"]]["text"]
        assert it["token_ids"] == CASES[it["id"]]["generated_ids"]
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "asr" and report["score"]["value"] == 0.0  # hypotheses == references
    assert report["counts"] == {"manifest": 3, "missing_audio": 0, "run": 3, "failed": 0}
    audio_s = sum(CASES[c]["samples_16k"] for c in cases) / 16000
    assert report["speed"]["audio_seconds"] == pytest.approx(audio_s)
    assert report["speed"]["generated_tokens"] == 30
    assert report["speed"]["real_time_factor"] > 0 and report["speed"]["decode_tokens_per_second"] > 0
    md = (out / "report.md").read_text()
    assert "WER (normalized): 0.00" in md and "real-time factor" in md

    # A rerun into the same --out keeps finished items: an edited one is scored as it stands.
    edited = [dict(it, text="x") if it["id"] == "short_er" else it for it in items]
    (out / "items.jsonl").write_text("".join(json.dumps(it) + "\n" for it in edited))
    assert run_task.main([asr, "--audio-dir", str(FIXTURES / "audio"), "--model", DEMO,
                          "--out", str(out), "--task", "asr"]) == 0
    assert [it["text"] for it in read_items(out)] == [it["text"] for it in edited]
    report = json.loads((out / "report.json").read_text())
    expected = metrics.wer([CASES[c]["text"] for c in cases], [it["text"] for it in edited], normalize=True)
    assert report["score"]["value"] == pytest.approx(100 * expected.rate) and expected.rate > 0


def test_run_task_sqa_accuracy_failures_and_missing_audio(tmp_path, capsys):
    sqa = CASES["museum_sqa"]
    header = ["id", "audio", "n_frames", "prompt", "tgt_text", "with_speech"]
    rows = [["ok", sqa["audio"], "1", sqa["prompt"], "A", "True"],
            ["bad", "missing.wav", "1", sqa["prompt"], "B", "True"]]
    tsv = write_tsv(tmp_path / "sqa.tsv", header, rows)
    args = [tsv, "--audio-dir", str(FIXTURES / "audio"), "--model", DEMO,
            "--out", str(tmp_path / "out"), "--max-new-tokens", "10", "--threads", "1"]
    assert run_task.main(args) == 2
    assert "1 of 2 audio files are missing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing ran

    # A corrupt file is recorded as a failed item and scored as no answer.
    shutil.copy(FIXTURES / "audio" / sqa["audio"], tmp_path / sqa["audio"])
    (tmp_path / "missing.wav").write_bytes(b"RIFF not really a wav")
    assert run_task.main(args[:2] + [str(tmp_path)] + args[3:]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["task"] == "sqa"  # recognised from the options in the prompt
    assert report["counts"] == {"manifest": 2, "missing_audio": 0, "run": 2, "failed": 1}
    ok, bad = read_items(tmp_path / "out")
    assert "missing.wav" in bad["error"]
    expected = metrics.extract_option(ok["text"], metrics.parse_options(sqa["prompt"]))
    assert ok["predicted"] == expected
    assert report["score"]["value"] == pytest.approx(50.0 if expected == "A" else 0.0)

    # A rerun keeps the failed item as it failed; --retry-failed runs it again (now readable).
    shutil.copy(FIXTURES / "audio" / sqa["audio"], tmp_path / "missing.wav")
    assert run_task.main(args[:2] + [str(tmp_path)] + args[3:]) == 0
    assert "missing.wav" in read_items(tmp_path / "out")[1]["error"]
    assert run_task.main(args[:2] + [str(tmp_path)] + args[3:] + ["--retry-failed"]) == 0
    ok, retried = read_items(tmp_path / "out")
    assert retried["error"] is None and retried["text"] == ok["text"]  # the same audio and prompt


def test_ctrl_c_says_what_was_kept_without_a_traceback(tmp_path, capsys, monkeypatch):
    tsv = write_tsv(tmp_path / "m.tsv", ["id", "audio", "prompt", "tgt_text"], [["0", "plants.wav", "p", "A"]])

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_task, "run_item", interrupt)
    for script in (run_task, gaokao):
        out = tmp_path / script.__name__
        assert script.main([tsv, "--audio-dir", str(FIXTURES / "audio"), "--model", DEMO, "--out", str(out)]) == 130
        err = capsys.readouterr().err
        assert "interrupted" in err and "rerun the same command" in err and "Traceback" not in err


def test_the_readme_example_runs_with_its_defaults(tmp_path):
    """`eval/run_task.py MANIFEST --model DIR --audio-dir DIR` as the README writes it: a script
    run from a checkout, --out defaulting to results/<manifest name>."""
    tsv = write_tsv(tmp_path / "asr.tsv", ["id", "audio", "prompt", "tgt_text"],
                    [["0", "plants.wav", CASES["plants_asr"]["prompt"], "t"]])
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the script finds the build tree's package itself
    env["WAVLLM_BUILD_DIR"] = str(Path(wavllm.__file__).resolve().parents[2])
    r = subprocess.run([str(EVAL / "run_task.py"), tsv, "--model", DEMO, "--audio-dir", str(FIXTURES / "audio"),
                        "--max-new-tokens", "3"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "results" / "asr" / "report.md").is_file()


def test_gaokao_missing_audio_and_score_available(tmp_path, capsys):
    prompt = CASES["museum_sqa"]["prompt"]
    header = ["id", "audio", "n_frames", "prompt", "tgt_text", "with_speech"]
    rows = [[f"short_conv_{i}", f"gaokao_audio/short_conv_{i}.wav", "111111", prompt, "ABC"[i], "True"]
            for i in range(3)]
    tsv = write_tsv(tmp_path / "gaokao.tsv", header, rows)
    audio = tmp_path / "dl" / "gaokao_audio"
    audio.mkdir(parents=True)
    for i, name in enumerate(["short.wav", "plants.wav"]):
        shutil.copy(FIXTURES / "audio" / name, audio / f"short_conv_{i}.wav")
    args = [tsv, "--audio-dir", str(tmp_path / "dl"), "--model", DEMO,
            "--out", str(tmp_path / "out"), "--max-new-tokens", "5", "--threads", "1"]
    assert gaokao.main(args) == 2
    assert "1 of 3 audio files are missing" in capsys.readouterr().err
    assert gaokao.main(args + ["--score-available"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["counts"]["run"] == 2 and report["counts"]["missing_audio"] == 1
    assert "2 questions with audio" in report["score"]["details"]["subset"]
    assert report["score"]["metric"] == "accuracy"


@pytest.mark.skipif(not SHARED_GAOKAO.exists(), reason="needs ../shared/data (the reference test data)")
def test_gaokao_real_manifest_without_audio(tmp_path, capsys):
    rc = gaokao.main([str(SHARED_GAOKAO), "--audio-dir", str(tmp_path), "--model", DEMO,
                      "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "2000 of 2000 audio files are missing" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")


def test_parallel_items_are_the_one_at_a_time_items(tmp_path):
    """--parallel N decodes N items together (Model.generate_many): the same items.jsonl answers,
    in the same order, a failing item in its place; a rerun resumes as before."""
    names = ["plants.wav", "short.wav", "museum.wav", "broken.wav", "stereo44k.wav", "phone8k.flac"]
    (tmp_path / "audio").mkdir()
    for n in names:
        source = FIXTURES / "audio" / n
        (tmp_path / "audio" / n).write_bytes(source.read_bytes() if source.exists() else b"not audio")
    rows = [[str(i), n, CASES["plants_asr"]["prompt"], "t"] for i, n in enumerate(names)]
    tsv = write_tsv(tmp_path / "asr.tsv", ["id", "audio", "prompt", "tgt_text"], rows)
    items = {}
    for parallel in ("1", "4"):
        out = tmp_path / f"out{parallel}"
        assert run_task.main([tsv, "--audio-dir", str(tmp_path / "audio"), "--model", DEMO, "--out", str(out),
                              "--max-new-tokens", "6", "--threads", "2", "--parallel", parallel]) == 0
        items[parallel] = read_items(out)
    keep = ("id", "text", "token_ids", "error")
    assert [{k: it[k] for k in keep} for it in items["1"]] == [{k: it[k] for k in keep} for it in items["4"]]
    assert [it["error"] is not None for it in items["4"]] == [n == "broken.wav" for n in names]

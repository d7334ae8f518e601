#!/usr/bin/python3
"""Runs the engine (through the Python binding) over a reference test manifest and scores it.

    eval/run_task.py ../shared/data/wavllm_test_data/asr.tsv --model models/wavllm --audio-dir AUDIO/

The manifest is the reference's TSV: a header, columns found by name (id, audio, prompt,
tgt_text; n_frames and with_speech are read but not needed). An audio path is joined to
--audio-dir (default: the manifest's folder) as the reference does; when that file does not
exist its leading folders are dropped one by one, so the reference manifests
("SpeechT5/WavLLM/.../test_data/audio/asr.flac") work against a flat copy of the audio.

The task decides the score (eval/wavllm_eval/metrics.py): asr -> WER (normalized, and the
reference's plain whitespace WER) and CER; st -> corpus BLEU (sacreBLEU defaults); sv, er,
sqa -> accuracy of the extracted answer; free -> no score (outputs and speed only). --task auto
(default) recognises the task from the prompts (docs/model.md §7).

Writes <out>/items.jsonl (one line per item, as it is produced: id, audio, prompt, reference,
text, token_ids, timings...; the fields of `wavllm batch`), <out>/report.json and
<out>/report.md (score, counts, speed: real-time factor and decode tokens/s); --out defaults to
results/<manifest name>. Items whose audio is missing stop the run before any work, unless
--score-available (then only the present ones are run and scored, and the report says how many
were missing). A failing item is recorded with its error and scored as an empty answer.
Rerunning into the same --out resumes, as `wavllm batch` does: finished items are kept, failed
ones too unless --retry-failed.
"""
import argparse
import io
import json
import os
import re
import sys
import time

EVAL = os.path.dirname(os.path.abspath(__file__))
if EVAL not in sys.path:
    sys.path.insert(0, EVAL)

from wavllm_eval.engine import wavllm  # noqa: E402
from wavllm.safetensors_io import open_regular_file  # noqa: E402
from wavllm_eval import metrics  # noqa: E402

TASKS = ("asr", "st", "sv", "er", "sqa", "free")
REQUIRED_COLUMNS = ("id", "audio", "prompt", "tgt_text")


class ManifestError(Exception):
    """A manifest that cannot be read, or a run that cannot start (message says why)."""


# ---------------------------------------------------------------- manifest

def read_manifest(path):
    """[{column: value}] of a reference TSV (header line, tab-separated, no quoting)."""
    try:
        # utf-8-sig: a byte order mark (spreadsheet exports) is not part of the first column.
        with open_regular_file(path) as f:
            lines = [line.rstrip("\r\n") for line in io.TextIOWrapper(f, encoding="utf-8-sig")]
    except OSError as e:
        raise ManifestError(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e})") from None
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise ManifestError(f"{path}: empty manifest (a header line is needed)")
    header = lines[0].split("\t")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ManifestError(f"{path}: no column {', '.join(missing)} in the header {header}")
    rows, seen = [], set()
    for n, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ManifestError(f"{path}:{n}: {len(fields)} fields, the header has {len(header)}")
        row = dict(zip(header, fields))
        if row["id"] in seen:
            raise ManifestError(f"{path}:{n}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        rows.append(row)
    return rows


def resolve_audio(root, rel):
    """root/rel, else root/<rel without its first k folders> for the smallest k that exists;
    None when no candidate exists. A candidate never lies outside root: an absolute path or
    one climbing with '..' is only looked up by its trailing folders inside root."""
    parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".")]
    base = os.path.normpath(root)
    for k in range(len(parts)):
        cand = os.path.normpath(os.path.join(base, *parts[k:]))
        inside = os.path.commonpath([base, cand]) == base and ".." not in parts[k:]
        if inside and os.path.isfile(cand):
            return cand
    return None


# ---------------------------------------------------------------- tasks and scoring

def infer_task(rows):
    """The task every prompt of the manifest asks for (docs/model.md §7), 'free' otherwise."""
    def task_of(prompt):
        if prompt == wavllm.transcribe_instruction():
            return "asr"
        if re.fullmatch(r"Translate the audio clip into [A-Z][a-z]+\.", prompt):
            return "st"
        if prompt == wavllm.speaker_verification_instruction():
            return "sv"
        if prompt == wavllm.emotion_instruction():
            return "er"
        if len(metrics.parse_options(prompt)) >= 2:
            return "sqa"
        return "free"
    tasks = {task_of(r["prompt"]) for r in rows}
    return tasks.pop() if len(tasks) == 1 else "free"


def gold_label(task, target):
    if task == "sv":
        return metrics.extract_yes_no(target) or target.strip().lower()
    if task == "er":
        return metrics.extract_emotion(target) or target.strip().lower()
    return target.strip().upper()  # sqa: the option letter


def predicted_label(task, hypothesis, prompt):
    if task == "sv":
        return metrics.extract_yes_no(hypothesis)
    if task == "er":
        return metrics.extract_emotion(hypothesis)
    return metrics.extract_option(hypothesis, metrics.parse_options(prompt))


def score(task, items):
    """{'metric', 'value', 'details'} over the items (failed items count with an empty answer);
    also adds each item's 'predicted' label for the accuracy tasks."""
    refs = [it["reference"] for it in items]
    hyps = [it["text"] for it in items]
    if task == "asr":
        norm = metrics.wer(refs, hyps, normalize=True)
        return {"metric": "WER (normalized)", "value": 100 * norm.rate,
                "details": {"wer_normalized": str(norm),
                            "wer_plain": str(metrics.wer(refs, hyps)),
                            "cer_normalized": str(metrics.cer(refs, hyps, normalize=True))}}
    if task == "st":
        bleu = metrics.corpus_bleu(hyps, refs)
        return {"metric": "BLEU", "value": bleu.score, "details": {"bleu": str(bleu)}}
    if task in ("sv", "er", "sqa"):
        gold = [gold_label(task, r) for r in refs]
        pred = [predicted_label(task, it["text"], it["prompt"]) for it in items]
        for it, p in zip(items, pred):
            it["predicted"] = p
        details = {"correct": sum(p == g for p, g in zip(pred, gold)),
                   "no_answer_found": sum(p is None for p in pred)}
        if task == "er":
            details["confusion"] = metrics.format_confusion(metrics.confusion_table(gold, pred))
        return {"metric": "accuracy", "value": 100 * metrics.accuracy(pred, gold), "details": details}
    return {"metric": None, "value": None, "details": {}}


# ---------------------------------------------------------------- running

def load_model(args):
    return wavllm.Model(args.model, device=args.device, dtype=args.dtype, threads=args.threads)


def generate_options(args):
    opts = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
            "top_p": args.top_p, "seed": args.seed, "num_beams": args.num_beams}
    return {k: v for k, v in opts.items() if v is not None}


def new_item(row, audio_path):
    return {"id": row["id"], "audio": audio_path, "prompt": row["prompt"],
            "reference": row["tgt_text"], "text": "", "token_ids": [], "error": None}


def with_result(item, r, seconds):
    """The item with a GenerationResult's fields, or a wavllm.Error's message."""
    if isinstance(r, wavllm.Error):  # a bad file or prompt: recorded, the run goes on
        item.update(error=str(r), seconds=seconds)
    else:
        item.update(text=r.text, token_ids=list(r.token_ids), seconds=seconds, audio_seconds=r.audio_seconds,
                    real_time_factor=r.real_time_factor, timings=r.timings)
    return item


def run_item(model, row, audio_path, options):
    start = time.perf_counter()
    try:
        r = model.generate(audio_path, row["prompt"], **options)
    except wavllm.Error as e:
        r = e
    return with_result(new_item(row, audio_path), r, time.perf_counter() - start)


def run_parallel(model, rows, audio_paths, options, parallel):
    """The rows decoded `parallel` at a time (Model.generate_many: the tokens each gets alone),
    yielded in order; an item's seconds are its own stages' (the batch shares the wall clock)."""
    batch = model.generate_many([(audio_paths[r["id"]], r["prompt"]) for r in rows], parallel=parallel, **options)
    for row, r in zip(rows, batch):
        seconds = 0.0 if isinstance(r, wavllm.Error) else r.timings["total"]
        yield with_result(new_item(row, audio_paths[row["id"]]), r, seconds)


def write_items(path, items):
    with open(path, "w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(item, ensure_ascii=False) + "\n")


def read_done(path, retry_failed):
    """Items of an earlier run, by id: every one, or (retry_failed) those without an error."""
    done = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    item = json.loads(line)
                except ValueError:  # a line cut by an interrupted run
                    continue
                if item.get("error") is None or not retry_failed:
                    done[item["id"]] = item
    return done


def speed(items):
    ok = [it for it in items if it.get("error") is None]
    audio = sum(it["audio_seconds"] for it in ok)
    wall = sum(it["seconds"] for it in ok)
    tokens = sum(len(it["token_ids"]) for it in ok)
    decode = sum(it["timings"]["decode"] for it in ok)
    stages = {}
    for it in ok:
        for k, v in it["timings"].items():
            stages[k] = stages.get(k, 0.0) + v
    return {"audio_seconds": audio, "wall_seconds": wall,
            "real_time_factor": wall / audio if audio else None,
            "generated_tokens": tokens,
            "decode_tokens_per_second": tokens / decode if decode else None,
            "stage_seconds": stages}


def run(args, rows, task, audio_paths, log=print):
    """Runs every row with an audio path; returns the report dict (items written as they go)."""
    items_path = os.path.join(args.out, "items.jsonl")
    # Only a folder of ours is written into: items.jsonl, report.json and report.md are replaced.
    if os.path.isdir(args.out) and os.listdir(args.out) and not os.path.isfile(items_path):
        raise ManifestError(f"{args.out}: holds files but no items.jsonl of an earlier run; "
                            "choose a new or empty --out folder")
    model = load_model(args)
    if task == "auto":
        task = infer_task(rows)
    os.makedirs(args.out, exist_ok=True)
    done = read_done(items_path, args.retry_failed)
    options = generate_options(args)
    items = []
    todo = [r for r in rows if audio_paths.get(r["id"])]
    with open(items_path, "w", encoding="utf-8") as out:
        fresh = [r for r in todo if r["id"] not in done]
        answers = (run_parallel(model, fresh, audio_paths, options, args.parallel) if args.parallel > 1
                   else (run_item(model, r, audio_paths[r["id"]], options) for r in fresh))
        for n, row in enumerate(todo, start=1):
            item = done.get(row["id"]) or next(answers)
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
            out.flush()
            items.append(item)
            status = f"ERROR {item['error']}" if item["error"] else repr(item["text"][:60])
            log(f"[{n}/{len(todo)}] {row['id']}: {status}")
    result = score(task, items)
    write_items(items_path, items)  # again, with the labels the scorer extracted
    return {
        "manifest": os.path.abspath(args.manifest), "model": os.path.abspath(args.model),
        "device": model.device, "dtype": model.dtype, "task": task,
        "generation": options, "score": result,
        "counts": {"manifest": len(rows), "missing_audio": len(rows) - len(todo), "run": len(items),
                   "failed": sum(it["error"] is not None for it in items)},
        "speed": speed(items),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def markdown(report):
    s, c, v = report["score"], report["counts"], report["speed"]
    value = "n/a (free task: no reference scorer)" if s["value"] is None else f"{s['value']:.2f}"
    lines = [f"# {os.path.basename(report['manifest'])}: {report['task']}", "",
             f"- model: `{report['model']}` ({report['device']}, {report['dtype']}), {report['date']}",
             f"- generation options: {report['generation'] or 'model defaults'}",
             f"- **{s['metric'] or 'score'}: {value}**"]
    lines += [f"  - {k}: {d}" for k, d in s["details"].items() if k != "confusion"]
    if "confusion" in s["details"]:
        lines += ["", "```", s["details"]["confusion"], "```", ""]
    lines += [f"- items: {c['manifest']} in the manifest, {c['run']} run, {c['failed']} failed, "
              f"{c['missing_audio']} with missing audio"]
    if v["real_time_factor"] is not None:
        tps = v["decode_tokens_per_second"]
        lines += [f"- speed: real-time factor {v['real_time_factor']:.3f} "
                  f"({v['wall_seconds']:.1f} s for {v['audio_seconds']:.1f} s of audio), "
                  f"{v['generated_tokens']} tokens, decode "
                  + (f"{tps:.1f} tokens/s" if tps else "n/a"),
                  "", "| stage | seconds |", "|---|---|"]
        lines += [f"| {k} | {t:.3f} |" for k, t in v["stage_seconds"].items()]
    return "\n".join(lines) + "\n"


def write_report(report, out):
    with open(os.path.join(out, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write(markdown(report))


def check_audio(rows, root, score_available, log=print):
    """{id: path or None}; raises ManifestError when audio is missing and not score_available."""
    paths = {r["id"]: resolve_audio(root, r["audio"]) for r in rows}
    missing = [r for r in rows if paths[r["id"]] is None]
    if missing:
        first = ", ".join(r["audio"] for r in missing[:3])
        msg = (f"{len(missing)} of {len(rows)} audio files are missing under {root} "
               f"(first: {first})")
        if not score_available:
            raise ManifestError(msg + "; pass --score-available to run and score the others")
        log(msg + ": scoring the available ones only")
    return paths


def add_arguments(p):
    """The options run() reads, shared with gaokao.py."""
    p.add_argument("manifest", help="reference TSV manifest")
    p.add_argument("--model", default=os.environ.get("WAVLLM_MODEL"), required="WAVLLM_MODEL" not in os.environ,
                   help="model directory (default $WAVLLM_MODEL)")
    p.add_argument("--out", help="output folder (items.jsonl, report.json, report.md); default results/<manifest name>")
    p.add_argument("--limit", type=int, help="run the first N items only")
    p.add_argument("--score-available", action="store_true",
                   help="run and score the items whose audio exists when some are missing")
    p.add_argument("--retry-failed", action="store_true",
                   help="run the items that failed in an earlier run into --out again (finished ones are kept)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--dtype", default="auto", help="auto (as stored), float32, bfloat16, or float16 (CUDA only)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (default 0: every core)")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--temperature", type=float, help="default: the model's config (greedy)")
    p.add_argument("--top-p", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--num-beams", type=int)
    p.add_argument("--parallel", type=int, default=1,
                   help="decode N items together (continuous batching, as wavllm serve: the same tokens; "
                        "greedy or sampling only)")


def default_out(args):
    if args.out is None:
        args.out = os.path.join("results", os.path.splitext(os.path.basename(args.manifest))[0])


def interrupted(prog, args):
    """Ctrl-C: one line saying what was kept, not a traceback (exit status 130, as a shell's)."""
    print(f"\n{prog}: interrupted; the finished items are in {os.path.join(args.out, 'items.jsonl')}: "
          "rerun the same command to go on", file=sys.stderr)
    return 130


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.add_argument("--audio-dir", help="folder the audio paths are relative to (default: the manifest's)")
    p.add_argument("--task", choices=("auto",) + TASKS, default="auto")
    args = p.parse_args(argv)
    default_out(args)
    try:
        rows = read_manifest(args.manifest)
        if args.limit is not None:
            rows = rows[:args.limit]
        root = args.audio_dir or os.path.dirname(os.path.abspath(args.manifest))
        paths = check_audio(rows, root, args.score_available)
        report = run(args, rows, args.task, paths)
    except (ManifestError, wavllm.Error) as e:
        print(f"run_task: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return interrupted("run_task", args)
    write_report(report, args.out)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

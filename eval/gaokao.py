#!/usr/bin/python3
"""The Gaokao English listening test (docs/model.md §7): 2000 spoken-dialogue questions with three
options each, scored by accuracy of the option letter the model picks.

    eval/gaokao.py ../shared/data/wavllm_test_data/gaokao.tsv --audio-dir DIR --model models/wavllm

gaokao.tsv lists the questions and answers; the audio is distributed separately (its paths
are gaokao_audio/<id>.wav: --audio-dir is the folder holding gaokao_audio/, or gaokao_audio/
itself). Without every audio file the script says how many are missing and stops; with
--score-available it runs and scores the present ones, and the report says the accuracy is
over that subset, not the full test.
"""
import argparse
import os
import sys

import run_task

OPTION_LETTERS = ("A", "B", "C")


def check_manifest(rows, path):
    bad = [r["id"] for r in rows if r["tgt_text"].strip() not in OPTION_LETTERS]
    if bad:
        raise run_task.ManifestError(f"{path}: {len(bad)} answers are not one of "
                                     f"{'/'.join(OPTION_LETTERS)} (first: {bad[0]})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    run_task.add_arguments(p)
    p.add_argument("--audio-dir", required=True, help="folder with gaokao_audio/ (or gaokao_audio/ itself)")
    args = p.parse_args(argv)
    run_task.default_out(args)
    try:
        rows = run_task.read_manifest(args.manifest)
        check_manifest(rows, args.manifest)
        if args.limit is not None:
            rows = rows[:args.limit]
        paths = run_task.check_audio(rows, args.audio_dir, args.score_available)
        if not any(paths.values()):
            raise run_task.ManifestError(f"none of the {len(rows)} audio files is under {args.audio_dir}")
        report = run_task.run(args, rows, "sqa", paths)
    except (run_task.ManifestError, run_task.wavllm.Error) as e:
        print(f"gaokao: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return run_task.interrupted("gaokao", args)
    c = report["counts"]
    if c["missing_audio"]:
        report["score"]["details"]["subset"] = (
            f"accuracy over the {c['run']} questions with audio; {c['missing_audio']} of "
            f"{c['manifest']} were missing: not comparable to a full-test figure")
    run_task.write_report(report, args.out)
    print(run_task.markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A manifest over a Slurm job array on a one-node cluster this test starts (Debian's slurmctld,
slurmd and munge, as root, every file and port its own): eval/slurm/batch_array.sbatch runs
`wavllm batch --shard i/3` per task and eval/slurm/merge.py joins them; the merged report has
the lines of one `wavllm batch` run on this machine, timings aside. Skipped with a message where
the cluster cannot start.
"""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import time

import pytest

import wavllm

ROOT = pathlib.Path(__file__).resolve().parents[2]
WAVLLM = pathlib.Path(wavllm.__file__).resolve().parents[2] / "bin" / "wavllm"
DEMO = ROOT / "models" / "demo"
AUDIO = ROOT / "tests" / "fixtures" / "audio"
SLURM = ROOT / "eval" / "slurm"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch")
TIMED = ("timings", "real_time_factor")  # wall-clock figures: differ from run to run


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find(tool):
    return shutil.which(tool) or next((p for p in (f"/usr/sbin/{tool}", f"/usr/bin/{tool}") if os.path.exists(p)), None)


@pytest.fixture
def cluster(tmp_path):
    missing = [d for d in DAEMONS if not find(d)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian's slurmctld, slurmd, slurm-client, munge: ./setup.sh)")
    if os.geteuid() != 0:
        pytest.skip("slurmd runs jobs as their users: the one-node cluster needs root")
    d = tmp_path / "slurm"
    for sub in ("state", "spool"):
        (d / sub).mkdir(parents=True)
    host = socket.gethostname().split(".")[0]
    conf = d / "slurm.conf"
    conf.write_text(f"""ClusterName=wavllmtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
AuthInfo=socket={d / 'munge.sock'}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}
SlurmctldPidFile={d / 'slurmctld.pid'}
SlurmdPidFile={d / 'slurmd.pid'}
SlurmctldLogFile={d / 'slurmctld.log'}
SlurmdLogFile={d / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    key = d / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started = []
    try:
        subprocess.run([find("munged"), "--force", f"--socket={d / 'munge.sock'}", f"--key-file={key}",
                        f"--pid-file={d / 'munged.pid'}", f"--log-file={d / 'munged.log'}",
                        f"--seed-file={d / 'munge.seed'}"], check=True, capture_output=True, timeout=30)
        started.append(d / "munged.pid")
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([find(daemon), "-f", conf], check=True, capture_output=True, timeout=30, env=env)
            started.append(d / f"{daemon}.pid")
        deadline = time.monotonic() + 30
        while "idle" not in subprocess.run([find("sinfo") or "sinfo", "-h", "-o", "%T"], capture_output=True,
                                           text=True, env=env).stdout:
            if time.monotonic() > deadline:
                logs = "\n".join((d / f).read_text()[-2000:] for f in ("slurmctld.log", "slurmd.log") if (d / f).exists())
                pytest.skip(f"the one-node Slurm cluster did not come up in 30 s:\n{logs}")
            time.sleep(0.2)
        yield env
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        pytest.skip(f"the one-node Slurm cluster could not start: {e}")
    finally:
        for pid_file in reversed(started):
            deadline = time.monotonic() + 10
            while not pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().split()[0]), 15)
                except (ProcessLookupError, ValueError):
                    pass


def strip_times(path):
    lines = [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in TIMED} for line in lines]


def test_a_job_array_and_its_merge_give_the_single_machine_report(cluster, tmp_path):
    rows = ["id\taudio\tn_frames\tprompt\ttgt_text\twith_speech"]
    names = ["plants.wav", "short.wav", "museum.wav", "stereo44k.wav", "phone8k.flac", "missing.wav", "plants.wav"]
    for i, name in enumerate(names):
        rows.append(f"item{i}\t{name}\t0\tDescribe the audio clip.\tref{i}\tTrue")
    manifest = tmp_path / "m.tsv"
    manifest.write_text("\n".join(rows) + "\n")
    options = ["--max-new-tokens", "6", "--temperature", "0"]
    single = tmp_path / "single.jsonl"
    r = subprocess.run([WAVLLM, "batch", "-m", DEMO, "--audio-dir", AUDIO, manifest, "--out", single, "-t", "1",
                        *options], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr  # missing.wav fails, in both runs

    out = tmp_path / "array"
    job = subprocess.run(["sbatch", "--parsable", "--wait", "--array=0-2", "--cpus-per-task=1",
                          f"--output={tmp_path}/task-%a.log", SLURM / "batch_array.sbatch", DEMO, manifest, AUDIO,
                          out, *options], capture_output=True, text=True, timeout=600,
                         env={**cluster, "WAVLLM": str(WAVLLM)})
    logs = "".join(p.read_text() for p in sorted(tmp_path.glob("task-*.log")))
    assert job.stdout.strip(), job.stderr + logs  # the job id: the array ran (a task with a failed item exits 1)
    for s in range(3):
        assert (tmp_path / f"array.{s}.jsonl").exists(), logs

    merged = tmp_path / "merged.jsonl"
    m = subprocess.run(["/usr/bin/python3", SLURM / "merge.py", out, "3", manifest, "--out", merged],
                       capture_output=True, text=True, timeout=60)
    assert m.returncode == 1 and "1 failed" in m.stderr, m.stderr
    assert strip_times(merged) == strip_times(single)

    # A shard left out is named, and nothing is written.
    (tmp_path / "array.1.jsonl").unlink()
    m = subprocess.run(["/usr/bin/python3", SLURM / "merge.py", out, "3", manifest, "--out", tmp_path / "partial.jsonl"],
                       capture_output=True, text=True, timeout=60)
    assert m.returncode == 1 and "array.1.jsonl: missing" in m.stderr and not (tmp_path / "partial.jsonl").exists()

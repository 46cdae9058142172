"""The SLURM profile end to end on a real single-node SLURM cluster (docs/toolchain.md recipe).

The fixture starts munged, slurmctld and slurmd (Debian's slurm 22.05) with every state, spool, log,
PID and socket file in a temporary folder; only slurm.conf (and gres.conf) must sit in /etc/slurm,
because the Snakemake plugin clears SLURM_CONF before it calls sbatch/squeue. Existing files there are
backed up and restored, and every daemon is stopped by its PID file, whatever the test outcome.
The node declares two fake GPUs (character devices) so the profile's `gpu: 1` requests are scheduled
as on a real cluster; training still runs on the CPU (train.device in the test config).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from _support import TEST_CONFIG, copy_repo, free_port, run, tool_bin, workflow_env

pytestmark = pytest.mark.integration

ETC = Path("/etc/slurm")
DAEMONS = ("slurmctld", "slurmd", "munged", "mungekey", "sbatch", "squeue", "sinfo")


def _missing() -> list[str]:
    return [d for d in DAEMONS if shutil.which(d) is None]


def _wait(pred, timeout: float, what: str, log: Path | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.5)
    extra = f"\n{log.read_text()[-3000:]}" if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{extra}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child would still answer kill(0): check its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _stop(pidfile: Path, timeout: float = 15) -> int | None:
    """Stop the daemon named by `pidfile` (TERM, then KILL); return its pid."""
    if not pidfile.exists():
        return None
    try:
        pid = int(pidfile.read_text().split()[0])
    except (ValueError, IndexError):
        return None
    if not _pid_alive(pid):
        return pid
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while time.monotonic() < end and _pid_alive(pid):
        time.sleep(0.2)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    return pid


SLURM_CONF = """\
# Written by tests/test_slurm.py (single-node test cluster); the original is restored afterwards.
ClusterName=salience-test
SlurmctldHost=localhost
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SchedulerType=sched/builtin
# The profile asks for the memory of a GPU node; trust the node line instead of /proc/meminfo.
SlurmdParameters=config_overrides
MinJobAge=900
GresTypes=gpu
NodeName=localhost NodeHostname={hostname} CPUs=2 RealMemory=64000 Gres=gpu:2 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
GRES_CONF = (
    "# Written by tests/test_slurm.py: two fake GPUs (character devices), so --gpus=1 jobs are\n"
    "# schedulable, two at a time as the node's two CPUs allow.\n"
    "AutoDetect=off\n"
    "NodeName=localhost Name=gpu File=/dev/null\n"
    "NodeName=localhost Name=gpu File=/dev/zero\n"
)


@pytest.fixture
def slurm_cluster(tmp_path_factory):
    """A running single-node SLURM cluster; yields its scratch folder."""
    if _missing():
        pytest.fail(
            f"SLURM/munge not installed ({', '.join(_missing())}); run: bash .ci/sysdeps.sh"
        )
    if os.geteuid() != 0:
        pytest.fail("the SLURM test runs the daemons as root (SlurmUser=root); run it as root")
    root = Path(tmp_path_factory.mktemp("slurm"))
    for d in ("state", "spool", "munge"):
        (root / d).mkdir()
    (root / "munge").chmod(0o755)  # munged refuses a socket directory that others can write
    key_dir = root / "mungekey"
    key_dir.mkdir(mode=0o700)
    key = key_dir / "munge.key"
    sock = root / "munge" / "munge.socket"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}

    backups: dict[Path, Path | None] = {}
    pidfiles = [root / "slurmd.pid", root / "slurmctld.pid", root / "munged.pid"]
    try:
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, env=env)
        subprocess.run(
            [
                "munged",
                "--force",
                f"--key-file={key}",
                f"--socket={sock}",
                f"--pid-file={root / 'munged.pid'}",
                f"--log-file={root / 'munged.log'}",
                f"--seed-file={root / 'munged.seed'}",
            ],
            check=True,
            env=env,
        )
        _wait(sock.exists, 15, "the munge socket", root / "munged.log")

        ETC.mkdir(parents=True, exist_ok=True)
        for name, text in (
            (
                "slurm.conf",
                SLURM_CONF.format(
                    root=root,
                    munge_socket=sock,
                    hostname=socket.gethostname(),
                    ctld_port=free_port(),
                    d_port=free_port(),
                ),
            ),
            ("gres.conf", GRES_CONF),
        ):
            path = ETC / name
            if path.exists():
                backup = root / f"{name}.orig"
                shutil.copy2(path, backup)
                backups[path] = backup
            else:
                backups[path] = None
            path.write_text(text)

        subprocess.run(["slurmctld"], check=True, env=env)
        subprocess.run(["slurmd", "-N", "localhost"], check=True, env=env)

        def idle() -> bool:
            out = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=env
            ).stdout
            return out.strip() in ("idle", "mixed", "allocated")

        _wait(idle, 60, "the SLURM node to become idle", root / "slurmctld.log")
        yield root
    finally:
        stopped = [_stop(p) for p in pidfiles]
        for path, backup in backups.items():
            if backup is None:
                path.unlink(missing_ok=True)
            else:
                shutil.copy2(backup, path)
        for pid in stopped:
            if pid is not None:
                assert not _pid_alive(pid), f"daemon pid {pid} still running after teardown"


def slurm_test_config(root: Path) -> str:
    """The CI config without the runs the local end-to-end test already covers (xent, the sanity
    variants): a CAM-loss run, the two-stage method and the fooling run with its DD Fig. 1 panel
    remain, i.e. every rule, in 4 SLURM jobs that fit the 2-core test node twice over."""
    cfg = yaml.safe_load((root / TEST_CONFIG).read_text())
    cfg["experiments"]["main"]["methods"] = ["cyborg", "mentor"]
    del cfg["experiments"]["sanity"]
    path = root / ".test" / "slurm.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path.relative_to(root))


def test_tiny_config_through_slurm_profile(slurm_cluster, tmp_path):
    """`snakemake --profile profiles/slurm` (the repo's profile, squeue status, no account) runs the
    tiny config to the tables; training jobs really went through sbatch with a GPU request."""
    root = copy_repo(tmp_path / "repo")
    config = slurm_test_config(root)
    env = workflow_env(root)
    env = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
    t0 = time.monotonic()
    proc = run(
        [
            str(tool_bin() / "snakemake"),
            "--profile",
            "profiles/slurm",
            "--configfile",
            config,
            "--jobs",
            "4",
            "--latency-wait",
            "5",
            # the profile's first check after 5 s suits a cluster; the toy jobs end sooner
            "--slurm-init-seconds-before-status-checks",
            "1",
        ],
        root,
        timeout=600,
        env=env,
    )
    seconds = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    tables = root / "results" / "tables"
    for name in ("sage_t1", "sage_t3", "agreement"):
        assert (tables / f"{name}.csv").is_file(), name
        assert (tables / f"{name}.tex").is_file(), name
    assert not (tables / "dd_t2.csv").exists()  # CYBORG alone is no DD study (no 1-method mirror)
    assert (root / "results" / "aggregate" / "summary.json").is_file()
    # the plugin submitted the jobs through sbatch: the controller still lists them (MinJobAge)
    jobs = subprocess.run(
        ["scontrol", "-o", "show", "job"], capture_output=True, text=True, env=env, check=True
    ).stdout.splitlines()
    assert jobs, "slurmctld knows no jobs: nothing was submitted through sbatch"
    assert all("JobState=COMPLETED" in j for j in jobs), "\n".join(jobs)
    # training (grouped with evaluation, profile `groups:`) asked for the profile's GPU
    gpu_jobs = [j for j in jobs if re.search(r"gres[/:]gpu", j)]
    assert gpu_jobs, "no job was submitted with a GPU request:\n" + "\n".join(jobs)
    # status checks used squeue as the profile says (sacct needs an accounting store, none here);
    # the plugin falls back to sacct only when MinJobAge is shorter than 3 status intervals
    assert "Falling back to 'sacct'" not in log
    # issue 14 §5: each finished run's one line reaches Snakemake's console (local rule announce)
    done = [ln for ln in log.splitlines() if re.match(r"done \S+: best epoch \d+, val AUROC", ln)]
    trained = [p.parent for p in (root / "results" / "runs").rglob("metrics.json")]
    assert trained and len(done) == len(trained), log[-3000:]
    print(
        f"SLURM run of {config}: {seconds:.0f} s, {len(jobs)} SLURM jobs ({len(gpu_jobs)} with a GPU)"
    )

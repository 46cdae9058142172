"""`python -m salience ui` serves the workflow's MLflow store: the runs of the end-to-end run and
their metrics are found through the REST API, the server listens on 127.0.0.1 only, and stopping
it leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from _support import free_port, post_json, stop_group, tool_bin, wait_healthy, workflow_env

from salience import study

pytestmark = pytest.mark.integration


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - local test server
        return resp.read()


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            pids.append(int(d.name))
    return pids


def _listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            addr, hex_port = parts[1].split(":")
            if parts[3] == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.append(addr)
    return found


def _run_id_tag(run: dict) -> str | None:
    """The salience run id of a REST run record (tag salience.run_id; the run name is short)."""
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}.get("salience.run_id")


def test_ui_serves_the_workflow_runs(e2e_run):
    port = free_port()
    cmd = [
        str(tool_bin() / "python"),
        "-m",
        "salience",
        "ui",
        "--port",
        str(port),
        "--config",
        str(e2e_run.config),
    ]
    env = workflow_env(e2e_run.root)
    log = e2e_run.root / "ui.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            cmd,
            cwd=e2e_run.root,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        print(f"MLflow UI answered /health after {wait_healthy(proc, base, log, 120):.1f} s")

        # bound to the loopback interface only
        addrs = _listening_addresses(port)
        assert addrs, "nothing listens on the port"
        assert all(a in ("0100007F", "00000000000000000000000001000000") for a in addrs), addrs

        exps = post_json(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 100})[
            "experiments"
        ]
        ids = [e["experiment_id"] for e in exps]
        found = post_json(
            f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": ids, "max_results": 1000}
        ).get("runs", [])
        names = {_run_id_tag(r) for r in found}
        cfg = study.load_config(e2e_run.config)
        expected = {r.run_id for r in study.expand_runs(cfg)}
        assert expected <= names, f"missing in MLflow: {sorted(expected - names)}"
        # the evaluation metrics of every run are there
        for name in expected:
            metrics = set()
            for r in found:
                if _run_id_tag(r) == name:
                    metrics |= {m["key"] for m in r["data"].get("metrics", [])}
            assert any(k.startswith("test_auroc") for k in metrics), (name, sorted(metrics))
        # issue 14 §6: model-training experiments (the UI opens on runs), short run names with
        # the full id in the tag, the prepared dataset as each run's dataset input
        ours = [e for e in exps if e["name"].startswith("salience-")]
        assert ours and all(
            {t["key"]: t["value"] for t in e.get("tags", [])}.get("mlflow.experimentKind")
            == "custom_model_development"
            for e in ours
        ), ours
        for r in found:
            rid = _run_id_tag(r)
            assert r["info"]["run_name"].startswith("/".join(rid.split("/")[3:])), (rid, r["info"])
            ds = [d["dataset"] for d in r.get("inputs", {}).get("dataset_inputs", [])]
            assert [d["name"] for d in ds] == [rid.split("/")[0]] and len(ds[0]["digest"]) == 16
            assert json.loads(ds[0]["profile"])["counts"]["train"]["total"] > 0
        links = [ln for ln in log.read_text().splitlines() if "workflowType=machine_learning" in ln]
        assert links and all(f"{base}/#/experiments/" in ln for ln in links), log.read_text()[:2000]
        # the UI page itself is served
        assert b"<html" in _get(f"{base}/").lower()
    finally:
        pgid = proc.pid  # start_new_session: the server leads its own process group
        stop_group(proc)
        end = time.monotonic() + 15
        while _group_pids(pgid) and time.monotonic() < end:
            time.sleep(0.3)
        left = _group_pids(pgid)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"processes left after stopping the server: {left}"

"""Tracking from a cluster (docs/cluster.md §6): a real `mlflow server --app-name basic-auth` on
127.0.0.1, two training jobs logging to it with credentials from MLflow's environment variables,
and a job with a wrong password stopped at start with one line.

The credentials never appear in a config file, run.json, an MLflow parameter or tag, or a job's
output; a tracking URI that carries them is refused.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from _support import (
    free_port,
    prepare_tiny,
    salience_argv,
    stop_group,
    tiny_config,
    wait_healthy,
    write_config,
)

from salience.errors import TrackingError
from salience.tracking import Tracker
from salience.tracking_store import preflight

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "admin-pw-7d1f0c9e3b"  # MLflow's minimum is 12 characters
TRAINER, TRAINER_PASSWORD = "trainer", "trainer-pw-5a8e2b4c61"
WRONG_PASSWORD = "not-the-password-0000"


def _status(url: str, user: str | None = None, password: str | None = None, body=None) -> int:
    headers = {"Content-Type": "application/json"}
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - local test server
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _start_server(tmp: Path, port: int) -> subprocess.Popen:
    """The documented set-up: auth config from MLFLOW_AUTH_CONFIG_PATH (user database beside the
    store), the admin password and the CSRF key from the environment, artifacts proxied by the
    server so that jobs upload them through the same authenticated endpoint."""
    ini = tmp / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{tmp / 'auth.db'}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-csrf-key",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(key, None)
    mlflow = Path(sys.executable).parent / "mlflow"
    cmd = [
        str(mlflow) if mlflow.exists() else "mlflow",
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp / 'mlflow.db'}",
        "--artifacts-destination",
        str(tmp / "artifacts"),
    ]
    with open(tmp / "server.log", "w") as fh:
        return subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )


def _job_env(uri: str, user: str, password: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_TRACKING_USERNAME": user,
        "MLFLOW_TRACKING_PASSWORD": password,
    }


def _train(cfg_path: Path, run_id: str, env: dict[str, str]) -> subprocess.Popen:
    cmd = salience_argv("train", "--config", str(cfg_path), "--run-id", run_id, "--evaluate")
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cfg_path.parent
    )


def test_two_jobs_log_to_an_authenticated_server(tmp_path, monkeypatch):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    t0 = time.monotonic()
    server = _start_server(server_dir, port)  # starts while the data are prepared
    try:
        cfg = tiny_config(tmp_path / "study", epochs=1)
        cfg["experiments"]["main"]["seeds"] = [0, 1, 2]
        prepare_tiny(cfg)
        cfg_path = write_config(cfg)
        assert "password" not in cfg_path.read_text().lower()
        print(f"data prepared after {time.monotonic() - t0:.1f} s")
        wait_healthy(server, base, server_dir / "server.log")
        print(f"authenticated MLflow server answered /health after {time.monotonic() - t0:.1f} s")

        # the door is locked: no credentials and a wrong password get 401, the admin gets in
        search = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
        assert _status(search) == 401
        assert _status(search, "admin", WRONG_PASSWORD) == 401
        assert _status(search, "admin", ADMIN_PASSWORD) == 200
        # a job with no credentials at all is told which variables to set
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
        with pytest.raises(TrackingError) as info:
            Tracker(base)
        assert str(info.value).startswith(
            f"MLflow server {base} refused the credentials (401, no MLFLOW_TRACKING_USERNAME); "
            "export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
        # the jobs run as their own (non-admin) user, created by the admin
        created = _status(
            f"{base}/api/2.0/mlflow/users/create",
            "admin",
            ADMIN_PASSWORD,
            body={"username": TRAINER, "password": TRAINER_PASSWORD},
        )
        assert created == 200

        # two jobs at once with credentials from the environment only, and beside them a job
        # with a wrong password, which stops at start: one line, exit 2, nothing written
        run_ids = [f"tiny/all/smallcnn/xent/base/seed{s}" for s in (0, 1)]
        bad_id = "tiny/all/smallcnn/xent/base/seed2"
        env = _job_env(base, TRAINER, TRAINER_PASSWORD)
        jobs = [_train(cfg_path, rid, env) for rid in run_ids]
        bad = _train(cfg_path, bad_id, _job_env(base, TRAINER, WRONG_PASSWORD))
        out, err = bad.communicate(timeout=120)
        assert bad.returncode == 2, out + err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith(f"error: MLflow server {base} refused the credentials (401"), err
        assert "MLFLOW_TRACKING_PASSWORD" in lines[0] and WRONG_PASSWORD not in err + out
        assert not (Path(cfg["results_dir"]) / "runs" / bad_id).exists()

        print(f"wrong password refused after {time.monotonic() - t0:.1f} s")
        outputs = [job.communicate(timeout=300) for job in jobs]
        print(f"two jobs finished after {time.monotonic() - t0:.1f} s")
        for job, (out, err) in zip(jobs, outputs):
            assert job.returncode == 0, out + err
            assert TRAINER_PASSWORD not in out + err

        # both runs arrived complete, read back through the authenticated client
        from mlflow.tracking import MlflowClient

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
        client = MlflowClient(tracking_uri=base)
        exp = client.get_experiment_by_name("salience-chest")
        assert exp is not None
        runs = {r.data.tags["salience.run_id"]: r for r in client.search_runs([exp.experiment_id])}
        assert sorted(runs) == sorted(run_ids)
        for rid in run_ids:
            run = runs[rid]
            assert run.info.status == "FINISHED"
            assert {"train_loss", "test_auroc_all"} <= set(run.data.metrics), run.data.metrics
            assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 1
            artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"model.pt", "metrics.json", "run.json", "scores.csv"} <= artifacts
            logged = json.loads(
                Path(
                    client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path))
                ).read_text()
            )
            local = json.loads(
                (Path(cfg["results_dir"]) / "runs" / rid / "metrics.json").read_text()
            )
            assert logged == local
            # the secret is nowhere in what the run recorded
            recorded = json.dumps([run.data.params, run.data.tags])
            recorded += (Path(cfg["results_dir"]) / "runs" / rid / "run.json").read_text()
            assert TRAINER_PASSWORD not in recorded and ADMIN_PASSWORD not in recorded
        # unauthenticated readers see nothing either
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
        assert _status(f"{base}/api/2.0/mlflow/runs/get?run_id={run.info.run_id}") == 401
    finally:
        stop_group(server)
    assert server.returncode is not None


def test_tracking_uri_with_credentials_is_refused():
    secret = "s3cret-in-a-uri"
    with pytest.raises(TrackingError) as info:
        preflight(f"http://trainer:{secret}@tracking.example:5000")
    msg = str(info.value)
    assert secret not in msg and "trainer" not in msg
    assert "MLFLOW_TRACKING_USERNAME" in msg and "http://tracking.example:5000" in msg


def test_doctor_and_ui_never_print_credentials_of_a_uri(monkeypatch):
    from salience.doctor import report
    from salience.errors import ConfigError
    from salience.ui import command

    secret = "s3cret-in-a-uri"
    uri = f"https://trainer:{secret}@tracking.example/mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    line = next(x for x in report() if x.startswith("tracking uri"))
    assert line.startswith("tracking uri  https://***@tracking.example/mlflow  (credentials"), line
    assert secret not in line and "trainer" not in line
    with pytest.raises(ConfigError) as info:
        command({"results_dir": "results", "tracking_uri": None}, "127.0.0.1", 5000)
    assert secret not in str(info.value) and "***@tracking.example" in str(info.value)

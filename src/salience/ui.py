"""`python -m salience ui`: the MLflow UI on the project's store, bound to 127.0.0.1 by default.

One worker and no job consumers (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false): starts in seconds and
leaves no orphan processes when stopped (docs/toolchain.md, "MLflow 3.x").
"""

from __future__ import annotations

import logging
import os
import sys

from salience import config as C
from salience.errors import ConfigError
from salience.tracking_store import artifact_root, redact_uri

log = logging.getLogger(__name__)


def command(cfg: dict, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    uri = C.tracking_uri(cfg)
    if uri.startswith(("http://", "https://")):
        raise ConfigError(
            f"tracking_uri {redact_uri(uri)} is already a server; open it in a browser instead of "
            f"`salience ui`"
        )
    from salience.tracking_store import local_dir

    folder = local_dir(uri)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        uri,
    ]
    root = artifact_root(uri)
    if root:
        cmd += ["--default-artifact-root", root]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return cmd, env


def serve(cfg: dict, host: str = "127.0.0.1", port: int = 5000) -> None:
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "MLflow UI will listen on %s: reachable from other machines, with no authentication",
            host,
        )
    cmd, env = command(cfg, host, port)
    base = f"http://{host}:{port}"
    print(f"MLflow UI on {base}  (store {C.tracking_uri(cfg)}); Ctrl-C stops it", flush=True)
    for line in experiment_links(C.tracking_uri(cfg), base):
        print(line, flush=True)
    os.execve(cmd[0], cmd, env)


def experiment_links(uri: str, base: str) -> list[str]:
    """One "  <experiment>: <url>" line per model-training experiment of a local store, each URL
    opening its runs table (`workflowType=machine_learning`: MLflow 3.17's UI otherwise opens the
    GenAI overview, whatever the experiment's kind tag says). [] when the store is not there yet."""
    from salience.tracking import KIND_TAG, MODEL_TRAINING
    from salience.tracking_store import local_dir

    folder = local_dir(uri)
    if folder is None or not any(folder.iterdir()):
        return []
    try:
        from mlflow.tracking import MlflowClient

        exps = MlflowClient(tracking_uri=uri).search_experiments(
            filter_string=f"tags.`{KIND_TAG}` = '{MODEL_TRAINING}'"
        )
    except Exception:  # noqa: BLE001 - links are a convenience; the server reports store errors
        return []
    url = "{}/#/experiments/{}?workflowType=machine_learning"
    return [f"  {e.name}: {url.format(base, e.experiment_id)}" for e in exps]

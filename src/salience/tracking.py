"""MLflow tracking: one experiment per task, one run per (dataset, backbone, method, seed, fold,
variant) named by its run id. Files in results/ are the artefacts of record; MLflow mirrors them.

Concurrency by design: many training jobs share one local store (a file store by default, each run
in its own folder; or SQLite). Store creation, experiment creation and dataset inputs happen under
an exclusive file lock, and every write is retried with backoff when SQLite reports a lock, so no
metric is lost (salience.tracking_store). A remote server that cannot be reached, or that refuses
the job's credentials, fails the job at start (`preflight`, `Tracker.__init__`), not after training.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from salience.tracking_store import artifact_root, auth_refused, preflight, retry, store_lock

log = logging.getLogger(__name__)
RUN_ID_TAG = "salience.run_id"
# MLflow 3's UI opens an experiment by its kind (mlflow/server/js: "mlflow.experimentKind");
# without it, it guesses GenAI (traces, token usage). Ours train models: the runs table.
KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v)
    return out


class Tracker:
    """A thin MLflow client wrapper for one run (no global fluent state)."""

    def __init__(self, uri: str) -> None:
        from mlflow.tracking import MlflowClient

        preflight(uri)
        self.uri = uri
        with store_lock(uri):
            self.client = retry(lambda: MlflowClient(tracking_uri=uri), "open store")
            # touching the store creates/migrates the SQLite schema while we hold the lock; on a
            # server with authentication it also checks the credentials before any training
            try:
                retry(lambda: self.client.search_experiments(max_results=1), "open store")
            except Exception as exc:  # noqa: BLE001 - MlflowException, or the REST layer's own
                refused = auth_refused(exc, uri)
                if refused is None:
                    raise
                raise refused from None
        self.run_id: str | None = None

    def experiment(self, name: str) -> str:
        with store_lock(self.uri):
            exp = retry(lambda: self.client.get_experiment_by_name(name), "get experiment")
            if exp is not None:
                if exp.tags.get(KIND_TAG) != MODEL_TRAINING:  # stores made before the tag
                    retry(
                        lambda: self.client.set_experiment_tag(
                            exp.experiment_id, KIND_TAG, MODEL_TRAINING
                        ),
                        "tag experiment",
                    )
                return exp.experiment_id
            root = artifact_root(self.uri)
            loc = f"{root}/{name}" if root else None
            try:
                return retry(
                    lambda: self.client.create_experiment(
                        name, artifact_location=loc, tags={KIND_TAG: MODEL_TRAINING}
                    ),
                    "create experiment",
                )
            except Exception as exc:  # noqa: BLE001 - RestException from a server
                # the file lock cannot serialise jobs on several nodes against one server: the
                # first job's experiment wins and the others use it
                if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                    raise
                exp = retry(lambda: self.client.get_experiment_by_name(name), "get experiment")
                if exp is None:
                    raise
                return exp.experiment_id

    def start(
        self, experiment: str, run_name: str, tags: dict[str, str], resume: str | None = None
    ) -> str:
        """Start the run, or re-open `resume` (an MLflow run id from an interrupted attempt)."""
        exp_id = self.experiment(experiment)
        if resume:
            try:
                retry(lambda: self.client.update_run(resume, status="RUNNING"), "resume run")
                self.run_id = resume
                return resume
            except Exception:  # noqa: BLE001 - store was wiped: start afresh
                log.warning("MLflow run %s not found in %s; starting a new one", resume, self.uri)
        else:
            # A rerun of the same run id (e.g. killed before its first checkpoint, which is where
            # `resume` comes from) reuses its MLflow run instead of leaving one RUNNING forever.
            reused = self._reuse(exp_id, run_name, tags)
            if reused is not None:
                self.run_id = reused
                return reused
        run = retry(
            lambda: self.client.create_run(
                exp_id,
                run_name=short_name(run_name, tags.get("stage")),
                tags={RUN_ID_TAG: run_name, **tags},
            ),
            "create run",
        )
        self.run_id = run.info.run_id
        return self.run_id

    def _reuse(self, exp_id: str, run_name: str, tags: dict[str, str]) -> str | None:
        """Earlier MLflow run of this run id and stage (looked up by tag) with the same
        configuration, re-opened as RUNNING; None when there is none. Earlier runs of the same run
        id and stage under another configuration that were left RUNNING are closed as KILLED."""
        query = f"tags.`{RUN_ID_TAG}` = '{run_name}'"
        if "stage" in tags:
            query += f" and tags.stage = '{tags['stage']}'"
        runs = retry(
            lambda: self.client.search_runs(
                [exp_id],
                filter_string=query,
                max_results=50,
                order_by=["attributes.start_time DESC"],
            ),
            "search runs",
        )
        for run in runs:
            if run.data.tags.get("config_hash") == tags.get("config_hash"):
                retry(
                    lambda rid=run.info.run_id: self.client.update_run(rid, status="RUNNING"),
                    "reuse run",
                )
                log.info("re-using MLflow run %s of %s", run.info.run_id, run_name)
                return run.info.run_id
        for run in runs:
            if run.info.status == "RUNNING":
                retry(
                    lambda rid=run.info.run_id: self.client.set_terminated(rid, status="KILLED"),
                    "close stale run",
                )
        return None

    def log_dataset(self, meta: dict, root: str | os.PathLike, context: str = "training") -> None:
        """The prepared dataset as the run's MLflow dataset input (the runs table's Dataset column,
        lineage): name, digest = the content hash of the source files (meta.json
        `source.files_sha256`), source = the prepared folder, profile = the split counts."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        src = meta.get("source") or {}
        digest = str(src.get("files_sha256") or src.get("manifest_sha256") or "")[:16]
        entity = Dataset(
            name=str(meta.get("name", Path(root).name)),
            digest=digest or "unknown",
            source_type="local",
            source=json.dumps({"uri": str(Path(root).resolve())}),
            profile=json.dumps({"n": meta.get("n"), "counts": meta.get("counts")}, default=str),
        )
        item = DatasetInput(entity, [InputTag("mlflow.data.context", context)])
        # The store's dataset row is get-or-create, like experiment creation: concurrent jobs of
        # one dataset would insert it twice (IntegrityError on SQLite), so serialise it the same way.
        with store_lock(self.uri):
            retry(lambda: self.client.log_inputs(self.run_id, datasets=[item]), "log dataset")

    def find(self, experiment: str, run_name: str) -> str | None:
        exp = retry(lambda: self.client.get_experiment_by_name(experiment), "get experiment")
        if exp is None:
            return None
        runs = retry(
            lambda: self.client.search_runs(
                [exp.experiment_id],
                filter_string=f"tags.`{RUN_ID_TAG}` = '{run_name}'",
                max_results=5,
                order_by=["attributes.start_time DESC"],
            ),
            "search runs",
        )
        return runs[0].info.run_id if runs else None

    def attach(self, run_id: str) -> None:
        self.run_id = run_id

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten(params)
        existing = retry(lambda: self.client.get_run(self.run_id).data.params, "get params")
        items = [Param(k, v[:6000]) for k, v in sorted(flat.items()) if k not in existing]
        for i in range(0, len(items), 100):
            chunk = items[i : i + 100]
            retry(
                lambda chunk=chunk: self.client.log_batch(self.run_id, params=chunk), "log params"
            )

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step) for k, v in sorted(metrics.items())]
        for i in range(0, len(items), 500):
            chunk = items[i : i + 500]
            retry(
                lambda chunk=chunk: self.client.log_batch(self.run_id, metrics=chunk), "log metrics"
            )

    def log_artifact(self, path: str | os.PathLike, subdir: str | None = None) -> None:
        retry(lambda: self.client.log_artifact(self.run_id, str(path), subdir), "log artifact")

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id:
            retry(lambda: self.client.set_terminated(self.run_id, status=status), "end run")


def experiment_name(task: str) -> str:
    return f"salience-{task}"


def short_name(run_id: str, stage: str | None = None) -> str:
    """MLflow run name a researcher reads: "method/variant/seedN" (+ " @fold" for held-out
    folds, + " [stage]" for an earlier training stage such as MENTOR's pretrain) of a run id
    dataset/fold/backbone/method/variant/seedN; the full id is the run's `salience.run_id` tag
    (how reruns find it). Other ids are kept as they are."""
    parts = run_id.split("/")
    if len(parts) != 6:
        return run_id
    _, fold, _, method, variant, seed = parts
    name = f"{method}/{variant}/{seed}" + ("" if fold == "all" else f" @{fold}")
    return name + ("" if stage in (None, "train", "evaluate") else f" [{stage}]")

"""MLflow tracking: one experiment per task, one run per (dataset, backbone, method, seed, fold,
variant) named by its run id. Files in results/ are the artefacts of record; MLflow mirrors them.

Concurrency by design: many training jobs share one local store (a file store by default, each run
in its own folder; or SQLite). Store creation and experiment creation happen under an exclusive
file lock (fcntl), and every write is retried with backoff when SQLite reports a lock, so no metric
is lost. A remote server that cannot be reached, or that refuses the job's credentials, fails the
job at start (`preflight`, `Tracker.__init__`), not after training.

Credentials for a server with MLflow's basic authentication come only from MLflow's environment
variables MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (docs/cluster.md §6): a URI that
carries them (http://user:password@host) is refused, because the URI is printed and may sit in a
config file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import random
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from salience.errors import TrackingError

log = logging.getLogger(__name__)
T = TypeVar("T")
RUN_ID_TAG = "salience.run_id"
# MLflow 3's UI opens an experiment by its kind (mlflow/server/js: "mlflow.experimentKind");
# without it, it guesses GenAI (traces, token usage). Ours train models: the runs table.
KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"

# MLflow's own HTTP retries would keep an unreachable server busy for minutes.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def _file_store(uri: str) -> Path | None:
    if uri.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(uri).path))
    return None


def _local_dir(uri: str) -> Path | None:
    """Folder of a local store (SQLite file's folder, or the file store itself)."""
    db = _sqlite_path(uri)
    return db.parent if db is not None else _file_store(uri)


def artifact_root(uri: str) -> str | None:
    """Artifacts of a local SQLite store live beside it (never MLflow's cwd-relative ./mlartifacts)."""
    db = _sqlite_path(uri)
    return (db.parent / "artifacts").resolve().as_uri() if db else None


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    folder = _local_dir(uri)
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    # experiment creation is check-then-create in both local stores: serialise it across jobs
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _retry(fn: Callable[[], T], what: str, attempts: int = 12) -> T:
    """Retry on SQLite lock contention (the only transient error we expect from a local store)."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - MLflow wraps sqlite errors in several types
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or i == attempts - 1:
                raise
            time.sleep(min(5.0, 0.1 * 2**i) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def redact_uri(uri: str) -> str:
    """`uri` with any user name and password replaced by `***`, for printing."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def _refuse_credentials_in_uri(uri: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.username is not None or parts.password is not None:
        host = parts.hostname or ""
        where = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
        raise TrackingError(
            f"tracking URI {where} carries a user name or password; remove them from tracking_uri / "
            f"MLFLOW_TRACKING_URI and export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            f"in the job environment instead (docs/cluster.md)"
        )


def _auth_refused(exc: Exception, uri: str) -> TrackingError | None:
    """One line for a server that refuses the job's credentials (HTTP 401/403), else None."""
    code = getattr(exc, "error_code", None)
    if code not in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return None
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    who = f"user {user!r}" if user else "no MLFLOW_TRACKING_USERNAME"
    if code == "UNAUTHENTICATED":
        what = f"refused the credentials (401, {who})"
    else:
        what = f"denied access (403, {who})"
    return TrackingError(
        f"MLflow server {uri} {what}; export MLFLOW_TRACKING_USERNAME and "
        f"MLFLOW_TRACKING_PASSWORD of a user of that server in the job environment (docs/cluster.md)"
    )


def preflight(uri: str) -> None:
    """Fail fast with one clear line when the tracking store cannot be used.

    Raises TrackingError for an unreachable server, a URI holding credentials, or a local store
    folder that cannot be created. Credentials themselves are checked by `Tracker` (the server's
    /health endpoint answers without them)."""
    if uri.startswith(("http://", "https://")):
        _refuse_credentials_in_uri(uri)
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - user-configured URI
                if resp.status != 200:
                    raise TrackingError(
                        f"MLflow server {uri} answered {resp.status} on /health; check tracking_uri"
                    )
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(
                f"MLflow tracking server {uri} is unreachable ({reason}); start it, fix tracking_uri / "
                f"MLFLOW_TRACKING_URI, or unset it to use the local store under results/mlflow"
            ) from None
        return
    folder = _local_dir(uri)
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingError(
                f"tracking store folder {folder} cannot be created ({exc}); fix tracking_uri"
            ) from None


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
        with _store_lock(uri):
            self.client = _retry(lambda: MlflowClient(tracking_uri=uri), "open store")
            # touching the store creates/migrates the SQLite schema while we hold the lock; on a
            # server with authentication it also checks the credentials before any training
            try:
                _retry(lambda: self.client.search_experiments(max_results=1), "open store")
            except Exception as exc:  # noqa: BLE001 - MlflowException, or the REST layer's own
                refused = _auth_refused(exc, uri)
                if refused is None:
                    raise
                raise refused from None
        self.run_id: str | None = None

    def experiment(self, name: str) -> str:
        with _store_lock(self.uri):
            exp = _retry(lambda: self.client.get_experiment_by_name(name), "get experiment")
            if exp is not None:
                if exp.tags.get(KIND_TAG) != MODEL_TRAINING:  # stores made before the tag
                    _retry(
                        lambda: self.client.set_experiment_tag(
                            exp.experiment_id, KIND_TAG, MODEL_TRAINING
                        ),
                        "tag experiment",
                    )
                return exp.experiment_id
            root = artifact_root(self.uri)
            loc = f"{root}/{name}" if root else None
            try:
                return _retry(
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
                exp = _retry(lambda: self.client.get_experiment_by_name(name), "get experiment")
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
                _retry(lambda: self.client.update_run(resume, status="RUNNING"), "resume run")
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
        run = _retry(
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
        runs = _retry(
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
                _retry(
                    lambda rid=run.info.run_id: self.client.update_run(rid, status="RUNNING"),
                    "reuse run",
                )
                log.info("re-using MLflow run %s of %s", run.info.run_id, run_name)
                return run.info.run_id
        for run in runs:
            if run.info.status == "RUNNING":
                _retry(
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
        with _store_lock(self.uri):
            _retry(lambda: self.client.log_inputs(self.run_id, datasets=[item]), "log dataset")

    def find(self, experiment: str, run_name: str) -> str | None:
        exp = _retry(lambda: self.client.get_experiment_by_name(experiment), "get experiment")
        if exp is None:
            return None
        runs = _retry(
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
        existing = _retry(lambda: self.client.get_run(self.run_id).data.params, "get params")
        items = [Param(k, v[:6000]) for k, v in sorted(flat.items()) if k not in existing]
        for i in range(0, len(items), 100):
            chunk = items[i : i + 100]
            _retry(
                lambda chunk=chunk: self.client.log_batch(self.run_id, params=chunk), "log params"
            )

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step) for k, v in sorted(metrics.items())]
        for i in range(0, len(items), 500):
            chunk = items[i : i + 500]
            _retry(
                lambda chunk=chunk: self.client.log_batch(self.run_id, metrics=chunk), "log metrics"
            )

    def log_artifact(self, path: str | os.PathLike, subdir: str | None = None) -> None:
        _retry(lambda: self.client.log_artifact(self.run_id, str(path), subdir), "log artifact")

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id:
            _retry(lambda: self.client.set_terminated(self.run_id, status=status), "end run")


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

"""Where the MLflow tracking store is and whether a job can use it: local stores (a SQLite file or
a file store, with their folder and an exclusive file lock), retries on SQLite lock contention,
credentials kept out of URIs, and the fail-fast check at job start (`preflight`). What a run logs
into the store: salience.tracking.

Store creation and experiment creation happen under an exclusive file lock (fcntl, `store_lock`),
and every write is retried with backoff when SQLite reports a lock (`retry`). A remote server that
cannot be reached fails the job at start (`preflight`); one that refuses the job's credentials is
reported by `auth_refused` in one line.

Credentials for a server with MLflow's basic authentication come only from MLflow's environment
variables MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (docs/cluster.md §6): a URI that
carries them (http://user:password@host) is refused, because the URI is printed and may sit in a
config file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from salience.errors import TrackingError

T = TypeVar("T")

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


def local_dir(uri: str) -> Path | None:
    """Folder of a local store (SQLite file's folder, or the file store itself)."""
    db = _sqlite_path(uri)
    return db.parent if db is not None else _file_store(uri)


def artifact_root(uri: str) -> str | None:
    """Artifacts of a local SQLite store live beside it (never MLflow's cwd-relative ./mlartifacts)."""
    db = _sqlite_path(uri)
    return (db.parent / "artifacts").resolve().as_uri() if db else None


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    folder = local_dir(uri)
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


def retry(fn: Callable[[], T], what: str, attempts: int = 12) -> T:
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


def auth_refused(exc: Exception, uri: str) -> TrackingError | None:
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
    folder = local_dir(uri)
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingError(
                f"tracking store folder {folder} cannot be created ({exc}); fix tracking_uri"
            ) from None

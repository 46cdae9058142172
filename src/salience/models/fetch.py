"""Download and verify the pinned ImageNet weight files (`python -m salience weights fetch|list`).

The files are exactly `weights.IMAGENET_URLS` (torchvision's IMAGENET1K_V1 of each backbone), saved
under their torchvision names in torch's hub cache (where `model.weights: imagenet|auto` looks) or
in a given folder. Each name carries the first 8+ hex digits of the file's sha256 (`-<hex>.`,
torch.hub's `HASH_REGEX`); a file is kept only when its sha256 starts with them, as torch.hub's
`check_hash` checks. `mirror` replaces only the base of the URL (`<mirror>/<file name>`), so a
mirror (an `http://` server or a `file://` folder) must serve the same names, and the names still
fix the expected hashes.

Why not `torch.hub.download_url_to_file`: when a server closes the connection before the
Content-Length is reached, `http.client` returns a short body without error, and torch then
reports a hash mismatch for what is a broken connection. Here the body length is checked first,
the download goes to a temporary sibling (`salience.io.atomic_path`), and only a complete, verified
file is renamed to its final name (nothing is left under the final name otherwise).
"""

from __future__ import annotations

import hashlib
import http.client
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.error import URLError
from urllib.request import urlopen

from torch.hub import HASH_REGEX
from tqdm import tqdm

from salience.errors import ConfigError, SalienceError
from salience.io import atomic_path
from salience.models.weights import IMAGENET_URLS, hub_dir

CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightFile:
    backbone: str
    url: str  # the pinned URL
    path: Path  # where the file is (or would be) saved

    @property
    def present(self) -> bool:
        return self.path.is_file()


def hash_prefix(url: str) -> str:
    """The sha256 prefix in the file name of `url` (torch.hub's `-<hex>.` convention, ≥ 8 digits)."""
    name = PurePosixPath(url).name
    m = HASH_REGEX.search(name)
    if not m or len(m.group(1)) < 8:
        raise ConfigError(f"{url}: file name has no sha256 prefix (-<8+ hex digits>.)")
    return m.group(1)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def weight_files(
    backbones: Iterable[str] | None = None,
    folder: Path | None = None,
    pins: Mapping[str, str] = IMAGENET_URLS,
) -> list[WeightFile]:
    """The pinned file of each backbone (all by default) in `folder` (default: torch's hub cache).

    Raises ConfigError for a backbone without a pinned file (smallcnn, a misspelt name)."""
    folder = Path(folder) if folder is not None else hub_dir()
    names = list(pins) if backbones is None else list(backbones)
    unknown = [b for b in names if b not in pins]
    if unknown:
        raise ConfigError(
            f"weights: no pinned ImageNet file for {', '.join(unknown)}; "
            f"choose from {', '.join(pins)}"
        )
    return [WeightFile(b, pins[b], folder / PurePosixPath(pins[b]).name) for b in names]


def source_url(url: str, mirror: str | None) -> str:
    """`url`, or `<mirror>/<its file name>` (the mirror replaces the base only)."""
    return url if not mirror else f"{mirror.rstrip('/')}/{PurePosixPath(url).name}"


def fetch_one(wf: WeightFile, mirror: str | None = None, progress: bool = True) -> str:
    """Make `wf.path` hold the verified file; returns "present" (already there) or "downloaded".

    Errors (SalienceError, one line): an existing file with another hash (left in place), a
    download that fails or stops early, a body whose sha256 does not start with the name's prefix.
    Only a verified file is ever renamed to `wf.path`."""
    prefix = hash_prefix(wf.url)
    if wf.present:
        got = sha256(wf.path)
        if not got.startswith(prefix):
            raise SalienceError(
                f"{wf.path}: present but its sha256 starts with {got[: len(prefix)]}, not {prefix} "
                f"as its name says (damaged or another file); move it away and rerun"
            )
        return "present"
    src = source_url(wf.url, mirror)
    # salience.io's temporary sibling (.tmp-<name>.*), renamed only when no exception left this block
    with atomic_path(wf.path) as tmp:
        digest, got, total = _download(src, tmp, wf.path.name, progress)
        if total is not None and got != total:
            raise SalienceError(
                f"{src}: connection closed after {got} of {total} bytes; nothing saved, "
                f"rerun the command to retry"
            )
        if not digest.startswith(prefix):
            raise SalienceError(
                f"{src}: sha256 starts with {digest[: len(prefix)]}, not {prefix} as the file name "
                f"says (corrupt or another file); nothing saved under {wf.path}"
            )
    return "downloaded"


def _download(src: str, tmp: Path, label: str, progress: bool) -> tuple[str, int, int | None]:
    """Stream `src` into `tmp`: (sha256 hex, bytes received, Content-Length or None)."""
    h, got = hashlib.sha256(), 0
    try:
        with urlopen(src, timeout=60) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with (
                open(tmp, "wb") as out,
                tqdm(
                    total=total, unit="B", unit_scale=True, desc=label, disable=not progress
                ) as bar,
            ):
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
    except (URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise SalienceError(
            f"{src}: download failed ({type(exc).__name__}: {reason}); nothing saved, "
            f"rerun the command to retry"
        ) from None
    return h.hexdigest(), got, total


def fetch(
    backbones: Iterable[str] | None = None,
    folder: Path | None = None,
    mirror: str | None = None,
    progress: bool = True,
    pins: Mapping[str, str] = IMAGENET_URLS,
) -> list[tuple[WeightFile, str]]:
    """Fetch every pinned file (or those of `backbones`) into `folder`; idempotent.

    `pins` defaults to the real table; tests pass a small one whose names carry their content's
    hash (the real names fix the hashes of the real 45–255 MB files)."""
    return [(wf, fetch_one(wf, mirror, progress)) for wf in weight_files(backbones, folder, pins)]

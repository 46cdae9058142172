"""User-facing errors: one clear line naming the file/key and the fix.

The CLI catches `SalienceError` and prints `error: <message>` to stderr with exit status 2, with no
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SalienceError(Exception):
    """A problem with the user's input or environment; the message says what to do."""


class DataError(SalienceError):
    """A manifest row, image or saliency map is unusable."""


class ConfigError(SalienceError):
    """The configuration is invalid (unknown key, wrong type, unknown method/backbone...)."""


class CheckpointError(SalienceError):
    """A checkpoint is missing, truncated, unsafe or from another model."""


class TrainingDiverged(SalienceError):
    """The loss became NaN/inf; the message names epoch and batch."""


class TrackingError(SalienceError):
    """The MLflow tracking store cannot be reached or written."""


# What to do about an operating-system error while reading or writing (errno → fix). Every output
# is written atomically (salience.io), so after any of these the same command can simply be rerun.
_OS_FIXES = {
    "ENOSPC": "free disk space (or point data_dir / results_dir at a larger disk)",
    "EDQUOT": "free space within your disk quota (or point data_dir / results_dir elsewhere)",
    "EFBIG": "raise the file size limit (`ulimit -f`) or write to another file system",
    "EACCES": "make it readable/writable for this user, or choose another folder",
    "EPERM": "make it readable/writable for this user, or choose another folder",
    "EROFS": "the file system is read-only: choose a writable folder",
    "ENOENT": "check the path",
    "EISDIR": "give a file path, not a folder",
    "ENOTDIR": "a part of the path is a file, not a folder: give another path",
    "EEXIST": "remove it or choose another path",
}


def os_error_line(exc: OSError) -> str:
    """One line for an OSError (full disk, permission denied, ...): the file, the cause, the fix,
    and that a rerun resumes (nothing was left half-written under a final name)."""
    import errno as _errno

    code = _errno.errorcode.get(exc.errno or 0, "")
    where = exc.filename if exc.filename is not None else "(file unknown)"
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    what = exc.strerror or str(exc) or type(exc).__name__
    fix = _OS_FIXES.get(code, "fix the cause")
    return (
        f"{where}: {what}{f' ({code})' if code else ''}; {fix}, then rerun the same command "
        f"(nothing half-written was kept)"
    )

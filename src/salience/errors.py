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

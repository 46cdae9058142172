"""Prepare-time check of leave-one-subset-out folds (DD §5: iris, one attack type held out per fold).

A fold holds out one value of the manifest's `subset` column. Without that column (e.g. it is
named `attack_type`, which the reader ignores with a warning) or without rows of a held-out subset,
every training job of the dataset would fail later; `prepare --config` stops first, with one line.
"""

from __future__ import annotations

import csv
from pathlib import Path

from salience.errors import DataError

SUBSET = "subset"


def check_fold_subsets(manifest: Path, dataset: str, holdout: list[str]) -> None:
    """Raise DataError unless `manifest` has a `subset` column holding every name in `holdout`.

    manifest: the dataset's manifest CSV (header `split,label,image,saliency,subset`, docs/data.md);
    a file that does not exist or has no header is left to the manifest reader to report.
    dataset: its name in the config (named in the message); holdout: `holdout_subsets`.
    """
    if not holdout or not manifest.is_file():
        return
    with open(manifest, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        if not header:
            return
        wanted = ", ".join(holdout)
        if SUBSET not in header:
            other = [h for h in header if h not in ("split", "label", "image", "saliency")]
            found = f" (found column(s) {', '.join(other)})" if other else ""
            raise DataError(
                f"{manifest} line 1: no `subset` column{found}, but dataset {dataset!r} uses "
                f"leave_one_subset_out folds (holdout_subsets: {wanted}); rename the column that "
                f"names each image's attack type or generator to `subset`"
            )
        i = header.index(SUBSET)
        present = {row[i].strip() for row in reader if len(row) > i and row[i].strip()}
    missing = [s for s in holdout if s not in present]
    if missing:
        have = ", ".join(sorted(present)) or "none: the column is empty"
        raise DataError(
            f"{manifest}: no row has subset {', '.join(map(repr, missing))} of "
            f"datasets.{dataset}.holdout_subsets (subsets in the manifest: {have}); fill the subset column or fix "
            f"holdout_subsets in the config"
        )

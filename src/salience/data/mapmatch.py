"""Match human saliency maps to images by name, as CYBORG's heatmap folder requires (issue 10.3–10.4).

CYBORG keys its heatmaps by the image's file name (docs/reference-implementations.md §1.3); real copies
of such folders store them under another extension (`x.jpg` → `heatmaps/x.png`) or mirror the
image folders (`heatmaps/1_fake/0003.png`). `MapIndex.match` therefore matches by **stem** with
any image extension, and uses the folders only to tell candidates apart:

- a candidate is admissible when it lies directly in the heatmap folder (flat) or its folder path is
  a trailing part of the image's folder path (`1_fake/` for `train/1_fake/0003.png`);
- of the admissible candidates the one with the longest such folder path wins;
- two admissible candidates at the same depth (`x.png` and `x.jpg`) are an error naming both.

`check_shared` then refuses a map that the name alone attached to several different images (two
classes sharing `heatmaps/0003.png`): a map belongs to one image.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from salience.errors import DataError

#: Extensions tried for a map (case-insensitive): the formats PIL reads that maps are stored in.
IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".gif",
    ".webp",
    ".pgm",
    ".ppm",
)


class MapIndex:
    """Every image file under `folder` (recursively), by stem."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.by_stem: dict[str, list[PurePosixPath]] = {}
        for dirpath, _dirs, files in os.walk(folder):
            for name in sorted(files):
                rel = PurePosixPath((Path(dirpath) / name).relative_to(folder).as_posix())
                if rel.suffix.lower() in IMAGE_EXTENSIONS:
                    self.by_stem.setdefault(rel.stem, []).append(rel)
        self.shared: dict[PurePosixPath, list[tuple[str, str]]] = {}

    def match(self, image_rel: str, here: str, image_path: Path | None = None) -> Path | None:
        """The map of the image at `image_rel` (path relative to the data root), or None.
        `image_path` (the image file) is never its own map, should the folder hold images too.

        Raises DataError when two maps fit equally well."""
        img = PurePosixPath(image_rel)
        folders = img.parent.parts
        itself = os.path.realpath(image_path) if image_path is not None else None
        best: list[PurePosixPath] = []
        depth = -1
        for cand in self.by_stem.get(img.stem, []):
            parts = cand.parent.parts
            if parts and tuple(folders[-len(parts) :]) != parts:
                continue  # in another image folder of a mirrored layout
            if itself is not None and os.path.realpath(self.folder / cand) == itself:
                continue
            if len(parts) > depth:
                best, depth = [cand], len(parts)
            elif len(parts) == depth:
                best.append(cand)
        if not best:
            return None
        if len(best) > 1:
            names = ", ".join(str(self.folder / b) for b in best)
            raise DataError(
                f"{here}: {image_rel}: {len(best)} heatmaps match its name ({names}); keep one of "
                f"them, or mirror the image folders under {self.folder} so that the folder tells "
                f"them apart"
            )
        self.shared.setdefault(best[0], []).append((here, image_rel))
        return self.folder / best[0]

    def check_shared(self) -> None:
        """Raise DataError when one map was matched to several different images."""
        for rel, users in sorted(self.shared.items()):
            images = sorted({img for _, img in users})
            if len(images) > 1:
                first = {img: here for here, img in reversed(users)}
                listed = "; ".join(f"{first[i]}: {i}" for i in images[:3])
                more = f" and {len(images) - 3} more" if len(images) > 3 else ""
                raise DataError(
                    f"{self.folder / rel}: matched by file name alone to {len(images)} different "
                    f"images ({listed}{more}); a map belongs to one image: mirror the image folders "
                    f"under {self.folder} (e.g. {self.folder / PurePosixPath(images[0]).parent / rel.name}) "
                    f"or rename the maps"
                )

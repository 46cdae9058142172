"""Code comments cite documents inside the repository (docs/), never notes outside it (issue 11.8).

The project's background notes lived beside the repository (reference-implementations.md,
toolchain.md, style.md, benchmark-data.md, methods.md); what the code relies on now sits in docs/.
A bare note name, a path into ../shared, or a docs/ file that does not exist is a dead citation
for anyone with only a clone.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ["src", "tests", "benchmarks", "workflow", "config", "profiles"]
TOP_FILES = ["Snakefile", "Makefile", "dvc.yaml", "README.md", "BENCHMARKS.md"]
SUFFIXES = {".py", ".smk", ".yaml", ".yml", ".md", ".rst", ".cfg", ".toml", ""}
# the external notes' file names; cited without "docs/" they point outside the repository
NOTE_NAMES = r"(?:reference-implementations|toolchain|style|benchmark-data|methods)\.md"
BARE_NOTE = re.compile(r"(?<![\w/-])" + NOTE_NAMES)
OUTSIDE = re.compile(r"shared/notes|\.\./shared/|/work/shared")
DOCS_REF = re.compile(r"\bdocs/([\w-]+\.md)")


def _files() -> list[Path]:
    out = [ROOT / f for f in TOP_FILES if (ROOT / f).is_file()]
    for d in SCANNED:
        out += [
            p
            for p in sorted((ROOT / d).rglob("*"))
            if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts
        ]
    out += sorted((ROOT / "docs").glob("*.md"))
    return out


def test_no_citation_points_outside_the_repository():
    bad = []
    for path in _files():
        if path == Path(__file__).resolve():
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{n}"
            if OUTSIDE.search(line):
                bad.append(f"{where}: path outside the repository: {line.strip()}")
            # inside docs/ a bare name is a relative link to a sibling document
            if BARE_NOTE.search(line) and path.parent != ROOT / "docs":
                bad.append(f"{where}: cites a note by bare name (cite docs/…): {line.strip()}")
            for name in DOCS_REF.findall(line):
                if not (ROOT / "docs" / name).is_file():
                    bad.append(f"{where}: cites docs/{name}, which does not exist")
    assert not bad, "\n".join(bad)


def test_the_moved_documents_hold_what_the_code_cites():
    # §-numbers the code cites in docs/reference-implementations.md
    ref = (ROOT / "docs" / "reference-implementations.md").read_text()
    for sec in (
        "### 1.1",
        "### 1.3",
        "## 2.",
        "## 3.",
        "## 5.",
        "## 6.",
        "## 7.",
        "## 8.",
        "## 9.",
    ):
        assert sec in ref, sec
    assert "1. **CAM layer registry per backbone**" in ref  # §12.1
    methods = (ROOT / "docs" / "methods.md").read_text()
    for heading in ("## Notation", "## CAM family", "## SAGE", "## SAGE's baselines"):
        assert heading in methods, heading
    tool = (ROOT / "docs" / "toolchain.md").read_text()
    assert "## MLflow 3.x" in tool and "## SLURM on one machine" in tool
    conv = (ROOT / "docs" / "conventions.md").read_text()
    assert "4. **The backbone contract**" in conv and "7. **Reporting is pure functions.**" in conv

"""docs/api.md's example runs exactly as written (issue 11.9).

The python blocks of the page are joined and run in a fresh interpreter, with this checkout's
package first on the path. The example trains a torchvision ResNet-18 for three steps with Contrast
Salience and three with SAGE on random tensors, then a 3-class head three steps with Contrast
Salience; every printed loss must be finite, equal the sum of its printed weighted terms, and change
between the first and the last step; the K = 3 block's macro AUROC must equal sklearn's.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
LINE = re.compile(r"^(\w+) step (\d+) loss (\S+) \((.*)\)$")


_RUNS: dict[str, subprocess.CompletedProcess] = {}


def run_page(tmp_path: Path) -> subprocess.CompletedProcess:
    """The page's python blocks joined and run once per session (both tests read its output)."""
    if "page" in _RUNS:
        return _RUNS["page"]
    blocks = BLOCK.findall(DOC.read_text())
    assert blocks, f"{DOC} has no ```python block"
    script = tmp_path / "api_example.py"
    script.write_text("\n".join(blocks))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    res = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    _RUNS["page"] = res
    return res


def test_api_example_trains_contrast_and_sage(tmp_path):
    res = run_page(tmp_path)
    losses: dict[str, list[float]] = {}
    for line in res.stdout.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        name, step, total, parts = m.group(1), int(m.group(2)), float(m.group(3)), m.group(4)
        assert math.isfinite(total), line
        assert step == len(losses.setdefault(name, [])), line
        terms = {k: float(v) for k, v in (p.rsplit(" ", 1) for p in parts.split(", "))}
        assert all(math.isfinite(v) for v in terms.values()), line
        assert abs(sum(terms.values()) - total) < 5e-4, line  # parts printed to 4 decimals
        losses[name].append(total)
    assert set(losses) == {"contrast", "sage", "contrast_k3"}, res.stdout
    for name in ("contrast", "contrast_k3"):
        assert set(terms_of(res.stdout, name)) == {"ce", "saliency", "saliency_contrast"}
    assert set(terms_of(res.stdout, "sage")) == {"ce", "sla", "sce"}
    for name, values in losses.items():
        assert len(values) == 3, (name, values)
        assert values[-1] != values[0], f"{name}: the loss did not change: {values}"


def test_api_k3_example_shapes_and_macro_auroc(tmp_path):
    """The K = 3 block: t is B×g×g, f (strongest) B×1×g×g, and the package's macro one-vs-rest
    AUROC equals sklearn's on the same logits."""
    out = run_page(tmp_path).stdout
    shapes = re.search(
        r"^t \(4, (\d+), \1\) f \(4, 1, \1, \1\) difference\(mean\) (\S+)$", out, re.M
    )
    assert shapes and 0 <= float(shapes.group(2)) <= 1, out
    auc = re.search(r"^k3 macro AUROC (\S+) sklearn (\S+)$", out, re.M)
    assert auc and auc.group(1) == auc.group(2) and 0 <= float(auc.group(1)) <= 1, out


def terms_of(stdout: str, name: str) -> list[str]:
    for line in stdout.splitlines():
        m = LINE.match(line)
        if m and m.group(1) == name:
            return [p.rsplit(" ", 1)[0] for p in m.group(4).split(", ")]
    return []

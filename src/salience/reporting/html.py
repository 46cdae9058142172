"""The tables as HTML for `snakemake --report` (issue 14): each table's booktabs LaTeX rendered as
an HTML table (same cells, best in bold, same caption), the overview page with the list of
tables and figures left out of the report and why, and the tidy CSVs as downloads.

The HTML is derived from `Table.latex` (style.render_latex's layout), so the report and the paper
LaTeX can never disagree.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pandas as pd

from salience.io import write_text
from salience.reporting.grid import Table
from salience.reporting.tables import NO_TEST_MAPS

# TeX of style.py / tables.py captions and cells → plain text (order matters: longest first)
_TEX_TEXT = [
    (r"$\pm$", "±"),
    (r"$^\dagger$", "†"),
    (r"$\tau$", "τ"),
    (r"$\sigma$", "σ"),
    (r"$\sigma(\mathrm{logit}_1)$", "σ(logit₁)"),
    (r"$1-h$", "1 − h"),
    (r"$h$", "h"),
    (r"$-$", "−"),
    ("---", "—"),
    ("--", "–"),
    (r"\textbackslash{}", "\\"),
    (r"\textasciitilde{}", "~"),
    (r"\textasciicircum{}", "^"),
]
_ESCAPED = re.compile(r"\\([&%$#_{}])")
_BOLD = re.compile(r"\\textbf\{(.*)\}")

SCORE_NOTE = (
    "Score: AUROC ranks the test images by the logit margin logit₁ − logit₀ (the ranking of the "
    "softmax probability of class 1, without float saturation)."
)
STYLE = (
    "<style>table.sal{border-collapse:collapse;font:13px sans-serif}"
    "table.sal th,table.sal td{padding:3px 9px;text-align:center}"
    "table.sal td.l,table.sal th.l{text-align:left}"
    "table.sal thead tr{border-top:2px solid #000;border-bottom:1px solid #000}"
    "table.sal tbody{border-bottom:2px solid #000} tr.mid{border-top:1px solid #000}"
    "body{font:13px sans-serif} p.cap{max-width:60em} small{color:#555}</style>"
)


def tex_text(s: str) -> str:
    """Plain text of a caption or cell written by style.py (bold marks kept as <b>…</b> later)."""
    s = s.replace(r"\sigma(\mathrm{logit}_1)", "σ(logit₁)")
    for a, b in _TEX_TEXT:
        s = s.replace(a, b)
    return _ESCAPED.sub(r"\1", s).replace("$", "")


def _cell(tex: str, left: bool = False) -> str:
    m = _BOLD.match(tex.strip())
    inner = m.group(1) + tex.strip()[m.end() :] if m else tex.strip()
    text = html.escape(tex_text(inner))
    cls = ' class="l"' if left else ""
    return f"<td{cls}><b>{text}</b></td>" if m else f"<td{cls}>{text}</td>"


def _parse(latex: str) -> tuple[str, list[str], list[tuple[bool, list[str]]]]:
    """(caption, header cells, [(rule before, row cells)]) of a style.render_latex table."""
    cap = re.search(r"\\caption\{(.*)\}\n\\label", latex, re.S)
    lines = latex.splitlines()
    top = lines.index(r"\toprule")
    header = lines[top + 1].removesuffix(r" \\").split(" & ")
    body, rule = [], False
    for ln in lines[top + 3 :]:
        if ln == r"\bottomrule":
            break
        if ln == r"\midrule":
            rule = True
            continue
        body.append((rule, ln.removesuffix(r" \\").split(" & ")))
        rule = False
    return (cap.group(1) if cap else ""), header, body


def _details(table: Table) -> dict[tuple[str, str], str]:
    """(row label, column label) → "n, 95 % CI, p" of each aggregate cell (the overview page)."""
    out = {}
    for a in table.data[table.data["kind"] == "aggregate"].itertuples(index=False):
        parts = [f"n = {a.n_seeds}"]
        if pd.notna(a.ci_low) and pd.notna(a.ci_high):
            parts.append(f"95% CI [{a.ci_low:.3f}, {a.ci_high:.3f}]")
        if pd.notna(a.p_vs_baseline):
            parts.append(f"p = {a.p_vs_baseline:.2g}")
        out[(str(a.row_label), str(a.col_label))] = ", ".join(parts)
    return out


def table_html(table: Table, details: bool = False) -> str:
    """One HTML page: the table with its caption (+ the score used), styled like booktabs;
    `details` adds n, 95 % CI and the p-value under each cell (from the tidy rows)."""
    caption, header, body = _parse(table.latex)
    n_stub = 2 if re.search(r"\{ll", table.latex) else 1
    caption = html.escape(tex_text(caption))
    if table.data["metric"].isin(["auroc", "auroc_sigmoid"]).any():
        caption += " " + html.escape(SCORE_NOTE)
    cols = [tex_text(h) for h in header]
    head = "".join(
        f'<th class="l">{html.escape(h)}</th>' if i < n_stub else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(cols)
    )
    extra = _details(table) if details else {}
    rows, labels = [], [""] * n_stub
    for rule, cells in body:
        labels = [tex_text(c) or labels[i] for i, c in enumerate(cells[:n_stub])]
        tds = []
        for i, c in enumerate(cells):
            td = _cell(c, left=i < n_stub)
            note = extra.get((" / ".join(labels), cols[i])) if i >= n_stub else None
            if note:
                td = td.replace("</td>", f"<br><small>{html.escape(note)}</small></td>")
            tds.append(td)
        rows.append(f'<tr class="mid">{"".join(tds)}</tr>' if rule else f"<tr>{''.join(tds)}</tr>")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{table.id}</title>{STYLE}"
        f"</head><body><p class='cap'><b>{table.id}</b>: {caption}</p><table class='sal' "
        f"id='{table.id}'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</body></html>\n"
    )


def is_empty(table: Table) -> bool:
    return not (table.data["kind"] == "aggregate").any()


def write_report_dir(
    built: list[Table],
    omitted: dict[str, str],
    html_dir: str | os.PathLike,
    csv_dir: str | os.PathLike,
) -> list[Path]:
    """<html_dir>/<id>.html and <csv_dir>/<id>.csv for every table with cells (the overview page
    also lists each item left out, with why). `omitted`: table/figure name → why it has nothing
    to show; empty tables not in it are listed as "no runs for this table"."""
    written = []
    left_out = {t.id: "no runs for this table" for t in built if is_empty(t)} | dict(omitted)
    for t in built:
        if is_empty(t):
            continue
        page = table_html(t, details=t.id == "overview")
        if t.id == "overview" and left_out:
            page = page.replace("</body>", _left_out_html(left_out) + "</body>")
        html_path, csv_path = Path(html_dir) / f"{t.id}.html", Path(csv_dir) / f"{t.id}.csv"
        write_text(html_path, page)
        write_text(csv_path, t.data.to_csv(index=False))
        written += [html_path, csv_path]
    return written


def _left_out_html(left_out: dict[str, str]) -> str:
    items = "".join(
        f"<li><code>{html.escape(k)}</code>: {html.escape(v)}</li>" for k, v in left_out.items()
    )
    return f"<h4>Left out of this report (nothing to show)</h4><ul>{items}</ul>"


# Why a table has nothing to show, by id (the overview page's "left out" lines).
TABLE_REASONS = {
    "dd_t3": "no iris runs of the DD methods (DD Table 3 is per held-out attack type)",
    "dd_t4": "no face runs of the DD methods (DD Table 4 is per generator)",
    "sage_t2_extended": "no SAGE-method runs beyond SAGE Table 2's rows",
    "sage_t3": "no sanity (flipped-map) experiment in this config",
    "sage_t4": "no τ ablation in this config",
    "sage_t5": "no σ ablation in this config",
}


def table_reasons(runs, built: list[Table], papers: list[str]) -> dict[str, str]:
    """Reason per table (or paper) that has nothing to show in the report."""
    out = {}
    for p in ("dd", "sage"):
        if p not in papers:
            out[f"{p.upper()} tables"] = "fewer than two of the paper's methods were run"
    for t in built:
        if not is_empty(t):
            continue
        if t.id == "agreement" and runs["cam_agreement"].isna().all():
            out[t.id] = NO_TEST_MAPS
        else:
            out[t.id] = TABLE_REASONS.get(t.id, "no runs for this table")
    return out

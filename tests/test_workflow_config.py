"""Workflow configs: every shipped config validates, bad ones fail with one clear line (in the
package and in `snakemake -n`), and the paper configs plan their full DAG without their data."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from _support import REPO, copy_repo, run_cli, tool_bin, workflow_env

from salience import study
from salience.errors import ConfigError
from salience.methods import catalogue

SHIPPED = [
    "config/config.yaml",
    "config/paper.yaml",
    "config/paper-dd.yaml",
    "config/multiclass.yaml",
    ".test/config.yaml",
]
PAPER = ["config/paper.yaml", "config/paper-dd.yaml"]


@pytest.fixture(scope="module")
def clean_repo(tmp_path_factory) -> Path:
    """A copy of the working tree without results, so dry runs plan every job."""
    return copy_repo(tmp_path_factory.mktemp("dryrun") / "repo")


def snakemake_n(
    configfile: str | Path, *extra: str, cwd: Path = REPO
) -> subprocess.CompletedProcess:
    """`snakemake -n` (plans only; writes nothing but .snakemake/ metadata)."""
    return subprocess.run(
        [str(tool_bin() / "snakemake"), "-n", *extra, "--configfile", str(configfile)],
        cwd=cwd,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    block = output.split("Job stats:")[-1]
    counts = {}
    for line in block.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def expected_jobs(cfg: dict) -> dict[str, int]:
    """What the DAG must hold according to salience.config (the one definition of the grid)."""
    runs = study.expand_runs(cfg)
    pre = sum(len(catalogue.get(r.method).stages) - 1 for r in runs)
    fooling = study.rq1_fooled_runs(cfg)
    rq1 = study.rq1_runs(cfg)  # DD RQ1: fooling runs and their counterpart's, one table/figure job
    return {
        "train": len(runs),
        "pretrain": pre,
        "visualize": len(fooling),
        "rq1_score": len(rq1),
        "rq1": 1,  # always: an empty table without fooling runs
    }


def _load(rel: str) -> dict:
    with open(REPO / rel) as fh:
        return yaml.safe_load(fh)


# ------------------------------------------------------------------------------ package validation
@pytest.mark.parametrize("rel", SHIPPED)
def test_shipped_configs_validate(rel):
    cfg = study.load_config(REPO / rel)
    assert study.expand_runs(cfg), f"{rel} asks for no runs"


def test_test_config_exercises_the_whole_dag():
    """The CI config covers a two-stage method, the sanity variants and the fooling panels."""
    cfg = study.load_config(REPO / ".test/config.yaml")
    runs = study.expand_runs(cfg)
    assert any(len(catalogue.get(r.method).stages) > 1 for r in runs), "no two-stage method"
    assert {r.variant for r in runs} >= {"base", "flipped"}
    assert study.rq1_fooled_runs(cfg)


def _broken(kind: str) -> tuple[dict, str]:
    cfg = _load(".test/config.yaml")
    if kind == "unknown key":
        cfg["train"]["epochz"] = 3
        return cfg, r"train.*unknown key.*epochz"
    if kind == "unknown method":
        cfg["experiments"]["main"]["methods"].append("cyborgg")
        return cfg, r"experiments\.main\.methods.*unknown method 'cyborgg'.*did you mean 'cyborg'"
    if kind == "unknown backbone":
        cfg["experiments"]["main"]["backbones"] = ["resnet51"]
        return cfg, r"experiments\.main\.backbones.*unknown backbone 'resnet51'"
    if kind == "wrong type":
        cfg["train"]["epochs"] = "many"
        return cfg, r"train\.epochs.*'many' is not of type 'integer'"
    raise AssertionError(kind)


KINDS = ["unknown key", "unknown method", "unknown backbone", "wrong type"]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_config_rejected_by_package(kind):
    cfg, pattern = _broken(kind)
    with pytest.raises(ConfigError) as err:
        study.validate(cfg, "bad.yaml")
    msg = str(err.value)
    assert "\n" not in msg.strip()
    assert re.search(pattern, msg), msg


def test_report_baseline_must_be_a_method_that_runs():
    """Issue 14: the overview's baseline is checked before any training, naming the methods run."""
    cfg = _load(".test/config.yaml")
    cfg["report"]["baseline"] = "cyborg"
    assert study.validate(cfg, "ok.yaml")["report"]["baseline"] == "cyborg"
    cfg["report"]["baseline"] = "sage"
    with pytest.raises(ConfigError) as err:
        study.validate(cfg, "bad.yaml")
    assert str(err.value) == (
        "bad.yaml: report.baseline: 'sage' is not run by any experiment (methods run: xent, "
        "cyborg, difference, mentor, fooling); pick one of them or remove the key (default xent)"
    )


@pytest.mark.parametrize(("exp", "field"), [("sanity", "flipped_maps"), ("fooling", "rq1_fooled")])
def test_experiment_named_for_a_behaviour_must_declare_it(tmp_path, exp, field):
    """Flipped maps and the RQ1 fooled runs are declared experiment fields; an old config whose
    experiment is named sanity/fooling without the field stops with one line naming what to add
    (exit 2) rather than silently losing its flipped-map runs or its DD Fig. 1 panels."""
    cfg = _load(".test/config.yaml")
    del cfg["experiments"][exp][field]
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = run_cli(["runs", "--config", str(path)], check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and proc.stdout == ""
    assert lines[0].startswith(f"error: {path}: experiments.{exp}: the experiment's name no longer")
    assert f"add `{field}: true` to keep that meaning, or `{field}: false`" in lines[0]


def test_false_class_sweep_on_binary_datasets_is_refused(tmp_path):
    """false_class only chooses among K − 1 > 1 false classes: a sweep of it on datasets that are
    all binary would plan identical trainings, so `runs` stops with one line (exit 2)."""
    cfg = _load(".test/config.yaml")
    names = list(cfg["datasets"])
    cfg["experiments"]["false_class_difference"] = {
        "datasets": names,
        "backbones": ["smallcnn"],
        "methods": ["difference"],
        "seeds": [0],
        "key": "methods.difference.false_class",
        "label": "difference",
        "values": ["strongest", "mean"],
    }
    path = tmp_path / "fc.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = run_cli(["runs", "--config", str(path)], check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and proc.stdout == ""
    assert lines[0] == (
        f"error: {path}: experiments.false_class_difference.key: methods.difference.false_class sweeps false_class, "
        f"but every dataset of the experiment ({', '.join(names)}) is binary, and false_class has "
        f"no effect for K = 2 (identical trainings); add a dataset with more than two `classes`, "
        f"or remove the experiment"
    )


def test_declared_experiment_fields_not_names_drive_the_grid():
    """`flipped_maps` gives any experiment its flipped variant and `rq1_fooled` marks RQ1's fooled
    runs, whatever the experiment is called; false turns them off under the old names."""
    cfg = _load(".test/config.yaml")
    cfg["experiments"]["main"]["flipped_maps"] = True
    cfg["experiments"]["main"]["rq1_fooled"] = True
    cfg["experiments"]["sanity"]["flipped_maps"] = False
    cfg["experiments"]["fooling"]["rq1_fooled"] = False
    cfg = study.validate(cfg, "fields.yaml")
    assert study.experiment_variants(cfg, "main") == ["base", "flipped"]
    assert study.experiment_variants(cfg, "sanity") == ["base"]
    flipped = {r.method for r in study.expand_runs(cfg, ["main"]) if r.variant == "flipped"}
    assert flipped and "xent" not in flipped  # xent never reads maps
    assert study.rq1_fooled_runs(cfg) == study.expand_runs(cfg, ["main"])
    assert "fooling" not in {r.method for r in study.rq1_fooled_runs(cfg)}


def test_planning_a_study_does_not_import_torch():
    """Validating a config and expanding its grid read the torch-free catalogues only
    (docs/decisions.md, "torch-free configuration layer"): `snakemake -n` stays fast."""
    code = (
        "import sys; import salience.study as s; "
        "cfg = s.load_config('config/paper-dd.yaml'); s.expand_runs(cfg); s.rq1_runs(cfg); "
        "s.skipped_combinations(cfg); s.resolve_run(cfg, s.expand_runs(cfg)[0]); "
        "s.rq1_settings(cfg); cfg = s.load_config('config/paper.yaml'); s.expand_runs(cfg); "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ snakemake parse
@pytest.mark.integration
@pytest.mark.parametrize("kind", KINDS)
def test_bad_config_rejected_by_snakemake(kind, tmp_path, clean_repo):
    cfg, pattern = _broken(kind)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake_n(path, cwd=clean_repo)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    # the package's check (salience.study.validate: schema and catalogues) names the key
    key = {
        "unknown key": "epochz",
        "unknown method": "cyborgg",
        "unknown backbone": "resnet51",
        "wrong type": "many",
    }[kind]
    assert key in out, out[-3000:]
    assert "Traceback" not in out, out[-3000:]


@pytest.mark.integration
def test_cli_overrides_and_several_configfiles_rejected(clean_repo):
    """The config Snakemake sees must be the one file every `python -m salience` call reads."""
    proc = snakemake_n(".test/config.yaml", "--config", "results_dir=elsewhere", cwd=clean_repo)
    assert proc.returncode != 0
    assert "--config KEY=VALUE overrides are not supported" in proc.stdout + proc.stderr
    proc = subprocess.run(
        [
            str(tool_bin() / "snakemake"),
            "-n",
            "--configfile",
            ".test/config.yaml",
            "config/config.yaml",
        ],
        cwd=clean_repo,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "give exactly one --configfile" in proc.stdout + proc.stderr


@pytest.mark.integration
def test_default_config_not_merged_into_another(clean_repo):
    """Without --configfile the demo config is used; with one, none of the demo's datasets leak in."""
    proc = snakemake_n(".test/config.yaml", "-p", cwd=clean_repo)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "--config .test/config.yaml" in out
    assert "--dataset face" not in out and "--dataset chest" not in out
    # the two-stage method: its train job waits for its pretrain job's model
    assert re.search(r"rule train:\n\s+input: [^\n]*stage-pretrain/model\.pt", out), out[-3000:]


@pytest.mark.integration
@pytest.mark.parametrize("rel", PAPER)
def test_paper_dag_plans_without_data(rel, record_property, clean_repo):
    """`snakemake -n` plans the whole paper matrix though its manifests are placeholders; the job
    counts equal what salience.study.expand_runs asks for."""
    cfg = study.load_config(REPO / rel)
    assert any(not Path(ds["manifest"]).exists() for ds in cfg["datasets"].values())
    t0 = time.monotonic()
    proc = snakemake_n(rel, "--quiet", "rules", cwd=clean_repo)
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    counts = job_counts(proc.stdout + proc.stderr)
    for rule, n in expected_jobs(cfg).items():
        assert counts.get(rule, 0) == n, (rule, counts)
    assert counts["prepare"] == len(cfg["datasets"])
    assert "generate" not in counts  # manifest datasets start at their manifest
    for rule in ("aggregate", "tables", "figures", "summary"):
        assert counts[rule] == 1
    total = sum(v for k, v in counts.items() if k != "total")
    record_property("dry_run_seconds", round(seconds, 1))
    record_property("jobs", total)
    print(f"snakemake -n --configfile {rel}: {total} jobs in {seconds:.1f} s")
    assert seconds < 120


def test_missing_manifest_stops_prepare_with_one_line(tmp_path):
    """The documented behaviour behind the plannable paper DAG: prepare names the missing file."""
    proc = subprocess.run(
        [
            str(tool_bin() / "python"),
            "-m",
            "salience",
            "prepare",
            "--config",
            str(REPO / "config/paper.yaml"),
            "--dataset",
            "iris",
        ],
        cwd=tmp_path,
        env=workflow_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "manifest" in last, proc.stderr[-2000:]
    assert not (tmp_path / "data" / "prepared" / "iris").exists()


def _schema_keys(node: dict, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key the config schema names, as paths ('*' for a name the user chooses)."""
    out: list[tuple[str, ...]] = []
    for key, sub in (node.get("properties") or {}).items():
        out.append((*path, key))
        out += _schema_keys(sub, (*path, key))
    for kind in ("additionalProperties", "items"):
        if isinstance(node.get(kind), dict):
            out += _schema_keys(node[kind], (*path, "*"))
    for name, sub in (node.get("$defs") or {}).items():
        out += _schema_keys(sub, (*path, name))
    return out


def test_config_readme_documents_every_schema_key():
    """config/README.md promises every key: a key the schema accepts and the guide does not name
    (in backticks, or bold for a top-level section) is a key a user cannot find."""
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    guide = (REPO / "config/README.md").read_text()
    # the experiment grids' own keys (datasets × backbones × methods × seeds) are described in
    # prose under `experiments`
    grid = {"datasets", "backbones", "methods", "seeds"}
    missing = [
        ".".join(p)
        for p in _schema_keys(schema)
        if f"`{p[-1]}`" not in guide
        and f"**`{p[-1]}" not in guide  # a section heading, e.g. **`datasets.<name>`**
        and not (p[0] in ("grid", "sweep") and p[-1] in grid)
    ]
    assert not missing, f"keys missing from config/README.md: {missing}"


def test_every_command_line_option_says_what_it_is():
    """`python -m salience <command> --help` explains every option and argument."""
    import argparse

    from salience.cli import build_parser

    def undocumented(parser: argparse.ArgumentParser, name: str) -> list[str]:
        out = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, sp in action.choices.items():
                    out += undocumented(sp, f"{name} {sub}")
            elif not action.help and not isinstance(action, argparse._HelpAction):
                out.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
        return out

    assert undocumented(build_parser(), "salience") == []


def test_every_rule_runs_the_interpreter_that_runs_snakemake_with_quoted_arguments():
    """A rule that calls a bare `python` fails without .venv active (exit 127); an unquoted
    `{wildcards.x}` splits a name with a space. Every shell command of workflow/rules/ follows
    the rule."""
    shells = []
    for path in sorted((REPO / "workflow/rules").glob("*.smk")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() != "shell:":
                continue
            parts = []
            for nxt in lines[i + 1 :]:
                if not nxt.strip().startswith('"'):
                    break
                parts.append(nxt.strip().strip('"'))
            shells.append("".join(parts))
    assert len(shells) >= 8, shells
    for cmd in (c for c in shells if "-m salience" in c):
        assert cmd.startswith("{PYTHON} -m salience "), cmd
    text = "\n".join(shells)
    for field in re.findall(r"\{((?:wildcards|params|input|output|log)[^}]*)\}", text):
        if field.split(":")[0] in ("params.mixed", "params.baseline", "params.settings"):
            continue  # a flag (its value quoted where it is built) or a rerun trigger
        assert field.endswith(":q"), f"unquoted shell field {{{field}}}"


@pytest.mark.parametrize(
    "cmd", ["runs --config config/config.yaml", "methods"], ids=["runs", "methods"]
)
def test_listing_into_a_closed_pipe_is_quiet(cmd):
    """`salience runs ... | head -1` (and any other listing): the reader leaving early is not an
    error (no message, exit 0). `true` exits before the interpreter has started, so the listing
    always writes into a closed pipe."""
    line = f"set -o pipefail; {sys.executable} -m salience {cmd} | true"
    proc = subprocess.run(
        ["bash", "-c", line], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""

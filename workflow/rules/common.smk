# Helpers for every rule: the config (one file, validated once), the run grid, path patterns,
# wildcard constraints and the `get_*` input functions. Rules never compute anything themselves.

import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

try:
    import salience.config as sc
    import salience.study as study
    from salience.errors import SalienceError
    from salience.methods import catalogue
except ImportError as _exc:
    raise WorkflowError(
        f"{sys.executable} cannot import the salience package ({_exc}); run `.venv/bin/snakemake` "
        "or `source .venv/bin/activate` first (`make demo` or `make test` creates .venv)"
    ) from None

# Jobs run `python -m salience` with the interpreter that runs Snakemake (it has just imported the
# package), not the first `python` on PATH: `.venv/bin/snakemake` works without activating .venv,
# and on SLURM the jobs use the same (shared) environment as the submit host (docs/decisions.md).
PYTHON = shlex.quote(sys.executable)


# ------------------------------------------------------------------------------------- config
# Files of the workflow itself (templates, report captions, schemas) resolve against the workflow's
# own folder, never the working directory: `snakemake --snakefile <repo>/Snakefile --directory
# <elsewhere>` must work (docs/robustness.md, "Names and paths").
WORKFLOW_DIR = Path(workflow.basedir)


def workflow_file(rel):
    """Absolute path of a file shipped with the workflow (`rel` is relative to the Snakefile)."""
    return str(WORKFLOW_DIR / rel)


def _config_file():
    """The one config file this invocation uses; every `python -m salience` call gets the same
    path, so the CLI sees exactly what Snakemake saw."""
    files = [Path(f) for f in workflow.overwrite_configfiles]
    if len(files) > 1:
        raise WorkflowError(
            "give exactly one --configfile (several would be merged by Snakemake, but "
            "`python -m salience --config` reads one file): " + ", ".join(map(str, files))
        )
    if workflow.config_settings.config:
        raise WorkflowError(
            "--config KEY=VALUE overrides are not supported: `python -m salience` would not see "
            "them. Copy the config file, edit it and pass it with --configfile."
        )
    path = files[0] if files else Path(DEFAULT_CONFIGFILE)
    # Relative to the working directory when inside it (shorter logs; SLURM jobs re-parse the
    # Snakefile with a relative --configfile and must arrive at the same string).
    path = path.resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


CONFIGFILE = _config_file()
# Used in shell: commands as {CONFIG_ARG}, deliberately not as a rule param: a param is a rerun
# trigger, and the same settings under another file name must not retrain anything. What the
# config says is tracked per job instead (params `settings`: a hash of the resolved settings).
CONFIG_ARG = shlex.quote(CONFIGFILE)

# The package's check: the JSON schema plus the method catalogue and backbone names,
# cross-references and per-method settings, reported as one line naming the key; CFG holds the
# schema's `default:` values. (Snakemake's own `validate` against the same schema found nothing
# more and cost 0.27 s per call: BENCHMARKS.md, "Planning the DAG".) No rule reads `config`.
try:
    CFG = study.validate(config, source=CONFIGFILE)
except SalienceError as exc:
    raise WorkflowError(str(exc)) from None

DATA = CFG["data_dir"]
RESULTS = CFG["results_dir"]
LOGS = "logs"
# Logs of the study-level rules (aggregate, tables, ...) are named after the results directory, so
# two configs with different results_dir (config/paper.yaml, config/paper-dd.yaml) keep both.
RESULTS_SLUG = re.sub(r"[^A-Za-z0-9_.-]+", "_", RESULTS.strip("/")) or "results"


# ------------------------------------------------------------------------------------- run grid
# salience.study.expand_runs is the ONE definition of the grid (experiments → runs); Snakemake,
# the CLI, the tests and docs all ask it. Planning reads the torch-free method catalogue only.
RUNS = study.expand_runs(CFG)
RUN_IDS = [r.run_id for r in RUNS]
FOOLING_RUNS = study.rq1_fooled_runs(CFG)  # DD Fig. 1 panels (experiments with rq1_fooled: true)
if not RUNS:
    raise WorkflowError(f"{CONFIGFILE}: the experiments ask for no runs")
for _line in study.skipped_combinations(CFG):
    logger.info(f"skipped (method cannot serve backbone): {_line}")

# One run = one directory; the id doubles as the MLflow run name.
RUN = "{dataset}/{fold}/{backbone}/{method}/{variant}/seed{seed}"
RUN_DIR = f"{RESULTS}/runs/{RUN}"


def _alternation(names):
    """Regex matching exactly one of `names` (never matches anything when empty)."""
    names = sorted(set(names))
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


def _stages(method):
    return catalogue.get(method).stages


# Earlier training stages (e.g. MENTOR's "pretrain"), from the method registry: no rule names a method.
PRE_STAGES = sorted({s for r in RUNS for s in _stages(r.method)[:-1]})
GENERATED = [d for d, ds in CFG["datasets"].items() if ds["source"] == "generated"]


wildcard_constraints:
    dataset=_alternation(CFG["datasets"]),
    fold="[^/]+",
    backbone=_alternation(r.backbone for r in RUNS),
    method=_alternation(r.method for r in RUNS),
    variant="[^/]+",
    seed=r"\d+",
    stage=_alternation(PRE_STAGES),


# ------------------------------------------------------------------------------------- helpers
def run_spec(wildcards):
    return sc.RunSpec(
        wildcards.dataset,
        wildcards.fold,
        wildcards.backbone,
        wildcards.method,
        wildcards.variant,
        int(wildcards.seed),
    )


def get_run_id(wildcards):
    return run_spec(wildcards).run_id


_SETTINGS = {}


def get_run_settings(wildcards):
    """Hash of the run's resolved configuration: a Snakemake param, so editing the config reruns
    exactly the runs it changes (rerun trigger "params"), and nothing else. Cached per run: the
    train and pretrain jobs of a run ask for the same hash."""
    spec = run_spec(wildcards)
    if spec not in _SETTINGS:
        _SETTINGS[spec] = sc.config_hash(study.resolve_run(CFG, spec))
    return _SETTINGS[spec]


def get_dataset_settings(wildcards):
    return sc.config_hash(CFG["datasets"][wildcards.dataset])


def prepared(dataset):
    return str(sc.prepared_dir(CFG, dataset))


# ------------------------------------------------------------------------------------- inputs
def get_prepare_input(wildcards):
    """Generated datasets: the raw directory made by `generate`. Manifest datasets: the manifest,
    when it exists. A missing manifest is left out on purpose so that `snakemake -n` can plan a
    config whose data are not on this machine (config/paper-*.yaml); `prepare` then stops with a
    one-line error naming the file. See docs/cluster.md."""
    ds = CFG["datasets"][wildcards.dataset]
    if ds["source"] == "generated":
        return {"raw": str(sc.raw_dir(CFG, wildcards.dataset))}
    manifest = sc.manifest_path(CFG, wildcards.dataset)
    return {"manifest": str(manifest)} if manifest.is_file() else {}


def _previous_stage_model(wildcards, stage):
    stages = _stages(wildcards.method)
    if stage not in stages:
        raise WorkflowError(f"method {wildcards.method!r} has no training stage {stage!r}")
    i = stages.index(stage)
    if i == 0:
        return {}
    run_dir = RUN_DIR.format(**wildcards)
    return {"previous": f"{run_dir}/stage-{stages[i - 1]}/model.pt"}


def get_stage_inputs(wildcards):
    """Inputs of an earlier training stage: prepared data (+ the stage before it, if any)."""
    return {"data": prepared(wildcards.dataset), **_previous_stage_model(wildcards, wildcards.stage)}


def get_train_inputs(wildcards):
    """Inputs of the final training stage: prepared data (+ the last earlier stage's model)."""
    final = _stages(wildcards.method)[-1]
    return {"data": prepared(wildcards.dataset), **_previous_stage_model(wildcards, final)}


def get_model_inputs(wildcards):
    """A trained run's selected model (and its prepared data): inputs of the DD Fig. 1 panels."""
    return {"data": prepared(wildcards.dataset), "model": RUN_DIR.format(**wildcards) + "/model.pt"}


def get_aggregate_inputs(wildcards):
    return {
        "run_list": f"{RESULTS}/aggregate/run-list.txt",
        "metrics": [f"{RESULTS}/runs/{r}/metrics.json" for r in RUN_IDS],
        "scores": [f"{RESULTS}/runs/{r}/scores.csv" for r in RUN_IDS],
    }


def get_fooling_panels():
    return [f"{RESULTS}/figures/difference_salience/{r.run_id}.png" for r in FOOLING_RUNS]


def multiclass(dataset):
    """A K > 2 dataset as planning sees it (docs/data.md): `datasets.<name>.classes` names more
    than two classes, or the generated 3-class task gaze3. An own dataset whose manifest holds
    integer labels 0…K−1 without `classes` is not seen here (no class-pair panels for it)."""
    ds = CFG["datasets"][dataset]
    return len(ds.get("classes") or []) > 2 or ds.get("task") == "gaze3"


def get_pair_panels():
    """Issue 12 §6: Difference Salience per class pair (`visualize --pairs`) for the runs of K > 2
    datasets whose method has a CAM head, one seed (the lowest) per dataset/fold/backbone/method/
    variant: the figure is qualitative, the seeds' spread is in the tables. Binary configs: none."""
    first = {}
    for r in RUNS:
        if multiclass(r.dataset) and catalogue.get(r.method).cam_head:
            key = r.run_id.rsplit("/", 1)[0]
            if key not in first or r.seed < first[key].seed:
                first[key] = r
    return [f"{RESULTS}/figures/difference_salience_pairs/{r.run_id}.png" for r in first.values()]


def get_final_outputs():
    return [
        f"{RESULTS}/tables",
        f"{RESULTS}/figures/summary",
        f"{RESULTS}/aggregate/summary.json",
        *get_fooling_panels(),
        *get_pair_panels(),
        *[f"{LOGS}/done/{r}.txt" for r in RUN_IDS],  # rule announce: one console line per run
    ]


# ------------------------------------------------------------------------------------- resources
# Generic resources only (mem_mb, runtime in minutes, gpu, threads); cluster-specific values are
# set per rule in profiles/slurm/config.yaml. Memory and time grow with each retry (`attempt`).
TRAIN_THREADS = max(1, CFG["train"]["threads"])


def mem_mb(base):
    return lambda wildcards, attempt: base * attempt


def runtime(base):
    return lambda wildcards, attempt: base * attempt

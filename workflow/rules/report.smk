# ------------------------------------------------------------------------------------- reporting
# Runs → tidy CSVs (aggregate) → tables (CSV + LaTeX) and figures; DD Fig. 1 panels per fooling
# run; a small JSON summary that DVC reads as its metrics. Outputs flagged with report() go into
# `snakemake --report results/report.html`, with captions from workflow/report/*.rst.


# The list of runs to aggregate, written from the grid (template rule: no code, rendered locally).
# A run directory left over from an earlier config is therefore never averaged into a table.
rule run_list:
    input:
        workflow_file("workflow/templates/run-list.txt.j2"),
    output:
        f"{RESULTS}/aggregate/run-list.txt",
    params:
        runs=RUN_IDS,
    template_engine:
        "jinja2"


# Every run → runs.csv (one row per run and test subset) and roc.csv (ROC points).
rule aggregate:
    input:
        unpack(get_aggregate_inputs),
    output:
        runs=f"{RESULTS}/aggregate/runs.csv",
        roc=f"{RESULTS}/aggregate/roc.csv",
    params:
        runs_root=f"{RESULTS}/runs",
    log:
        f"{LOGS}/aggregate/{RESULTS_SLUG}.log",
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{PYTHON} -m salience aggregate --runs-root {params.runs_root:q} --run-list {input.run_list:q}"
        " --out-runs {output.runs:q} --out-roc {output.roc:q} > {log:q} 2>&1"


# The overview (every method run) and the papers' tables (DD Tables 2–4, SAGE Tables 1–5, CAM
# agreement), each as CSV and LaTeX; for the report, the non-empty ones as HTML and CSV downloads.
rule tables:
    input:
        runs=f"{RESULTS}/aggregate/runs.csv",
    output:
        tables=directory(f"{RESULTS}/tables"),
        # the report shows each table with cells rendered (HTML), and offers its tidy CSV
        html=report(
            directory(f"{RESULTS}/report/tables"),
            patterns=["{name}.html"],
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "{name}"},
        ),
        csv=report(
            directory(f"{RESULTS}/report/csv"),
            patterns=["{name}.csv"],
            caption="../report/tidy.rst",
            category="Tidy CSVs (download)",
            labels={"table": "{name}"},
        ),
    params:
        # report.allow_mixed_weights: tables may mix random-init and pretrained runs (docs/decisions.md)
        mixed="--allow-mixed-weights" if CFG["report"]["allow_mixed_weights"] else "",
        # report.baseline: paired-test baseline of the overview table (docs/decisions.md "Tables")
        baseline=(
            f"--baseline {shlex.quote(CFG['report']['baseline'])}" if CFG["report"].get("baseline") else ""
        ),
    log:
        f"{LOGS}/tables/{RESULTS_SLUG}.log",
    shell:
        "{PYTHON} -m salience tables --runs {input.runs:q} --out-dir {output.tables:q} {params.mixed}"
        " {params.baseline} --html-dir {output.html:q} --csv-dir {output.csv:q} > {log:q} 2>&1"


# Summary figures (AUROC per method/backbone/task, ROC curves, ablations).
rule figures:
    input:
        runs=f"{RESULTS}/aggregate/runs.csv",
        roc=f"{RESULTS}/aggregate/roc.csv",
    output:
        report(
            directory(f"{RESULTS}/figures/summary"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
            labels={"figure": "{name}"},
        ),
    log:
        f"{LOGS}/figures/{RESULTS_SLUG}.log",
    shell:
        "{PYTHON} -m salience figures --runs {input.runs:q} --roc {input.roc:q} --out-dir {output:q}"
        " > {log:q} 2>&1"


# DD Fig. 1: true-class, false-class and Difference-Salience CAMs of one passively fooled model
# (K > 2 classes: the true class against its strongest competitor, with the human map).
rule visualize:
    input:
        unpack(get_model_inputs),
    output:
        report(
            f"{RESULTS}/figures/difference_salience/{RUN}.png",
            caption="../report/difference_salience.rst",
            category="Difference Salience (DD Fig. 1)",
            labels={"dataset": "{dataset}", "fold": "{fold}", "backbone": "{backbone}", "seed": "{seed}"},
        ),
    params:
        run_id=get_run_id,
        samples=CFG["report"]["visualize_samples"],
    log:
        f"{LOGS}/visualize/{RUN}.log",
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{PYTHON} -m salience visualize --config {CONFIG_ARG} --run-id {params.run_id:q}"
        " --out {output:q} --samples {params.samples:q} > {log:q} 2>&1"


# Issue 12 §6: Difference Salience per ordered class pair (i, j), norm(cam_i − cam_j) on samples of
# class i, for the runs of K > 2 datasets (get_pair_panels).
rule visualize_pairs:
    input:
        unpack(get_model_inputs),
    output:
        report(
            f"{RESULTS}/figures/difference_salience_pairs/{RUN}.png",
            caption="../report/difference_salience_pairs.rst",
            category="Difference Salience per class pair",
            labels={"run": "{dataset}/{fold}/{backbone}/{method}/{variant}/seed{seed}"},
        ),
    params:
        run_id=get_run_id,
        samples=CFG["report"]["visualize_samples"],
    log:
        f"{LOGS}/visualize_pairs/{RUN}.log",
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{PYTHON} -m salience visualize --config {CONFIG_ARG} --run-id {params.run_id:q}"
        " --out {output:q} --samples {params.samples:q} --pairs > {log:q} 2>&1"


# A few headline numbers as JSON (`dvc metrics show` reads it; see dvc.yaml).
rule summary:
    input:
        runs=f"{RESULTS}/aggregate/runs.csv",
    output:
        f"{RESULTS}/aggregate/summary.json",
    log:
        f"{LOGS}/summary/{RESULTS_SLUG}.log",
    shell:
        "{PYTHON} -m salience summary --runs {input.runs:q} --out {output:q} > {log:q} 2>&1"


# Light rules run in the main Snakemake process even under the SLURM profile.
localrules:
    run_list,
    aggregate,
    tables,
    figures,
    summary,

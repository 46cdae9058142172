# ------------------------------------------------------------------------------------- DD RQ1
# Agreement (CC, SIM, KL, NSS) and faithfulness (deletion/insertion curves) of the true-class CAM,
# the false-class CAM and Difference Salience, for the fooling runs and their unfooled counterpart
# (rq1.counterpart, CYBORG), then one table and one figure (docs/decisions.md, "RQ1").
# salience.study.rq1_runs is the one definition of which runs are compared (torch-free).

RQ1_RUNS = [r.run_id for r in study.rq1_runs(CFG)]


def get_rq1_settings(wildcards):
    """Rerun trigger of rq1_score: the rq1 block and SAGE's blur, not the training settings (a
    changed curve setting re-scores, it never retrains)."""
    return sc.config_hash(study.rq1_settings(CFG))


def rq1_report(path, **kw):
    """`path` in the report only when the config has fooling runs: without them the table is a
    header and the figure says "no fooling runs" (kept for DVC's study stage), and the report's
    overview lists DD RQ1 as left out, with that reason (reporting.figures.figure_reasons)."""
    return report(path, **kw) if RQ1_RUNS else path


def get_rq1_outputs():
    """Always requested (a config without fooling runs gets a header-only table and a "no fooling
    runs" figure), so DVC's study stage can own results/rq1 for any config."""
    return [f"{RESULTS}/rq1/rq1.csv", f"{RESULTS}/rq1/rq1_deletion.png"]


# One run's measurements: rq1.json (means, mean curves, settings) + rq1_images.csv (per image).
rule rq1_score:
    input:
        unpack(get_model_inputs),
    output:
        json=f"{RUN_DIR}/rq1.json",
        images=f"{RUN_DIR}/rq1_images.csv",
    params:
        run_id=get_run_id,
        settings=get_rq1_settings,
    log:
        f"{LOGS}/rq1_score/{RUN}.log",
    benchmark:
        f"{LOGS}/rq1_score/{RUN}.benchmark.tsv"
    threads: TRAIN_THREADS
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime(30),
    shell:
        "{PYTHON} -m salience rq1-score --config {CONFIG_ARG} --run-id {params.run_id:q} > {log:q} 2>&1"


# The RQ1 table (CSV + LaTeX) and the deletion-curve figure.
rule rq1:
    input:
        [f"{RESULTS}/runs/{r}/rq1.json" for r in RQ1_RUNS],
    output:
        table=rq1_report(
            f"{RESULTS}/rq1/rq1.csv",
            caption="../report/rq1.rst",
            category="DD RQ1",
            labels={"what": "table"},
        ),
        latex=f"{RESULTS}/rq1/rq1.tex",
        figure=rq1_report(
            f"{RESULTS}/rq1/rq1_deletion.png",
            caption="../report/rq1.rst",
            category="DD RQ1",
            labels={"what": "deletion curves"},
        ),
    params:
        out_dir=f"{RESULTS}/rq1",
        counterpart=CFG["rq1"]["counterpart"],
    log:
        f"{LOGS}/rq1/{RESULTS_SLUG}.log",
    shell:
        "{PYTHON} -m salience rq1 --inputs {input:q} --out-dir {params.out_dir:q}"
        " --counterpart {params.counterpart:q} > {log:q} 2>&1"


localrules:
    rq1,

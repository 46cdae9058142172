# ------------------------------------------------------------------------------------- training
# One job per run and training stage; the last stage also scores the test split. Methods with
# several stages (their registry entry lists e.g. ("pretrain", "train"), MENTOR) get one `pretrain`
# job per earlier stage, whose model is an input of the next stage. Every file is written
# atomically (temp file, then rename), so a present output is complete.


# Earlier training stages (e.g. MENTOR's saliency-decoder pretraining).
rule pretrain:
    input:
        unpack(get_stage_inputs),
    output:
        f"{RUN_DIR}/stage-{{stage}}/model.pt",
    params:
        run_id=get_run_id,
        settings=get_run_settings,
    log:
        f"{LOGS}/pretrain/{RUN}/{{stage}}.log",
    benchmark:
        f"{LOGS}/pretrain/{RUN}/{{stage}}.benchmark.tsv"
    threads: TRAIN_THREADS
    resources:
        mem_mb=mem_mb(8000),
        runtime=runtime(120),
        gpu=0,  # the SLURM profile asks for a GPU (set-resources); 0 = CPU-only locally
    shell:
        "{PYTHON} -m salience train --config {CONFIG_ARG} --run-id {params.run_id:q}"
        " --stage {wildcards.stage:q} > {log:q} 2>&1"


# The final (or only) training stage, then the evaluation of the selected model on the test split
# in the same process (`--evaluate`: one interpreter, torch and MLflow start-up per run instead of
# two; docs/decisions.md "evaluation"): model.pt, history.csv, run.json, scores.csv, metrics.json.
# scores.csv and metrics.json are written together, last, once both are computed.
rule train:
    input:
        unpack(get_train_inputs),
    output:
        history=f"{RUN_DIR}/history.csv",
        meta=f"{RUN_DIR}/run.json",
        model=f"{RUN_DIR}/model.pt",
        scores=f"{RUN_DIR}/scores.csv",
        metrics=f"{RUN_DIR}/metrics.json",
    params:
        run_id=get_run_id,
        stage=lambda wildcards: _stages(wildcards.method)[-1],
        settings=get_run_settings,
    log:
        f"{LOGS}/train/{RUN}.log",
    benchmark:
        f"{LOGS}/train/{RUN}.benchmark.tsv"
    threads: TRAIN_THREADS
    resources:
        mem_mb=mem_mb(8000),
        runtime=runtime(240),
        gpu=0,  # the SLURM profile asks for a GPU (set-resources); 0 = CPU-only locally
    shell:
        "{PYTHON} -m salience train --config {CONFIG_ARG} --run-id {params.run_id:q}"
        " --stage {params.stage:q} --evaluate > {log:q} 2>&1"


# One console line per finished run ("done <run id>: best epoch E, val AUROC V, test AUROC T", the
# last line `train` prints to its log), so progress is visible without opening logs. A local rule:
# its output reaches Snakemake's console under the SLURM executor too, where a job's own stdout
# goes to the SLURM log. No Python start-up: grep only.
rule announce:
    input:
        metrics=f"{RUN_DIR}/metrics.json",
    output:
        f"{LOGS}/done/{RUN}.txt",
    params:
        train_log=f"{LOGS}/train/{RUN}.log",
    log:
        f"{LOGS}/done/{RUN}.log",
    priority: 100
    shell:
        "grep -h '^done ' {params.train_log:q} > {output:q} 2> {log:q} || true; cat {output:q}"


localrules:
    announce,

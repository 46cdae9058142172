# ------------------------------------------------------------------------------------- evaluation
# Score the test split with the selected model: per-image scores and per-subset AUROC.


rule evaluate:
    input:
        unpack(get_evaluate_inputs),
    output:
        scores=f"{RUN_DIR}/scores.csv",
        metrics=f"{RUN_DIR}/metrics.json",
    params:
        run_id=get_run_id,
        settings=get_run_settings,
    log:
        f"{LOGS}/evaluate/{RUN}.log",
    benchmark:
        f"{LOGS}/evaluate/{RUN}.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime(30),
        gpu=0,
    shell:
        "python -m salience evaluate --config {CONFIG_ARG} --run-id {params.run_id} > {log} 2>&1"

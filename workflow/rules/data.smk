# ------------------------------------------------------------------------------------- data
# Raw data → prepared data. Generated datasets (the embedded benchmark) are made by `generate`;
# manifest datasets (your own data, docs/data.md) start at their manifest. `prepare` validates the
# manifest, resizes images and maps, and stores the human maps at the configured CAM grids.


# Generate the embedded benchmark of one dataset (PNG images + maps + manifest.csv).
rule generate:
    output:
        directory(f"{DATA}/raw/{{dataset}}"),
    params:
        settings=get_dataset_settings,
    log:
        f"{LOGS}/generate/{{dataset}}.log",
    wildcard_constraints:
        dataset=_alternation(GENERATED),
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{PYTHON} -m salience generate --config {CONFIG_ARG} --dataset {wildcards.dataset:q} > {log:q} 2>&1"


# Validate and prepare one dataset for training (fixed size, maps at the CAM grids, meta.json).
rule prepare:
    input:
        unpack(get_prepare_input),
    output:
        directory(f"{DATA}/prepared/{{dataset}}"),
    params:
        settings=get_dataset_settings,
    log:
        f"{LOGS}/prepare/{{dataset}}.log",
    resources:
        mem_mb=mem_mb(4000),
        runtime=runtime(60),
    shell:
        "{PYTHON} -m salience prepare --config {CONFIG_ARG} --dataset {wildcards.dataset:q} > {log:q} 2>&1"

# Table of contents of the study workflow: which config, which
# rule files, which final targets. Rules live in workflow/rules/, helpers in workflow/rules/common.smk.
#
#   snakemake --cores 2                                   # demo: config/config.yaml
#   snakemake --cores 2 --configfile .test/config.yaml    # any other config REPLACES the default
#   snakemake --profile profiles/slurm --configfile config/paper.yaml
#   snakemake --report results/report.html                # after a run: tables and figures in HTML

from snakemake.utils import min_version

min_version("9.0")


# Snakemake MERGES a Snakefile `configfile:` with a CLI --configfile, which would mix the demo's
# datasets into another config; so the default is read only when no --configfile was given.
DEFAULT_CONFIGFILE = "config/config.yaml"
if not workflow.overwrite_configfiles:

    configfile: DEFAULT_CONFIGFILE


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/rq1.smk"


# Everything the config asks for: every table and figure, the DD Fig. 1 panels of the fooling runs,
# the DD RQ1 table and figure, and the summary DVC reads as its metrics.
rule all:
    input:
        get_final_outputs(),
        get_rq1_outputs(),
    default_target: True


# Snakemake cannot write `--report` in the same call; a finished run names the one command that does.
onsuccess:
    _cfg = "" if CONFIGFILE == DEFAULT_CONFIGFILE else f" --configfile {CONFIG_ARG}"
    print(
        f"Tables in {RESULTS}/tables, figures in {RESULTS}/figures. HTML report:\n"
        f"  snakemake --cores 1{_cfg} --report {shlex.quote(RESULTS + '/report.html')}"
    )

#!/usr/bin/env bash
# System packages the test suite exercises for real (not pip-installable).
# Idempotent: a quick no-op when everything is present; `apt-get update` runs only when installing.
# Needs root to install; otherwise exits 1 naming what is missing.
#
# One entry per requirement: "<check command>|<apt packages that satisfy it>".
# Add new requirements (e.g. SLURM, munge) as further entries.
set -euo pipefail

SYSDEPS=(
  # pdflatex compiles every reporting table in tests/test_reporting.py
  "command -v pdflatex|texlive-latex-base texlive-latex-recommended"
  # booktabs (\toprule/\midrule/\bottomrule) ships in texlive-latex-recommended
  "command -v kpsewhich && kpsewhich booktabs.sty|texlive-latex-base texlive-latex-recommended"
  # a real single-node SLURM cluster (controller, node daemon, sbatch/squeue) with munge
  # authentication for tests/test_slurm.py (the Snakemake SLURM profile end to end)
  "command -v slurmctld && command -v slurmd && command -v sbatch && command -v squeue && command -v munged && command -v mungekey|slurmctld slurmd slurm-client munge"
)

missing=()
for entry in "${SYSDEPS[@]}"; do
  check="${entry%%|*}"
  pkgs="${entry#*|}"
  if ! bash -c "$check" >/dev/null 2>&1; then
    echo "sysdeps: missing ($check) -> $pkgs" >&2
    for p in $pkgs; do
      [[ " ${missing[*]-} " == *" $p "* ]] || missing+=("$p")
    done
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "sysdeps: all present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "sysdeps: error: need root to install: ${missing[*]}" >&2
  echo "sysdeps: run 'sudo bash .ci/sysdeps.sh' or: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

for entry in "${SYSDEPS[@]}"; do
  check="${entry%%|*}"
  if ! bash -c "$check" >/dev/null 2>&1; then
    echo "sysdeps: error: still failing after install: $check" >&2
    exit 1
  fi
done
echo "sysdeps: installed ${missing[*]}"

#!/usr/bin/env bash
# Snakemake runs this in the freshly created envs/mmdet.yaml environment (--use-conda).
set -euo pipefail
script=$(dirname "${BASH_SOURCE[0]}")/../scripts/mmdet/install.sh
[ -f "$script" ] || script=scripts/mmdet/install.sh  # a copy in /tmp: from the workdir
bash "$script" "$CONDA_PREFIX"

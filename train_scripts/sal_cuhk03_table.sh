#!/usr/bin/env bash
# SAL's ablation on real photos (CUHK03, labelled crops): the rows of the
# SynthReID ablation (1 Soft, 3 Soft+Quad, 3(T) Soft+Triplet, 4 Soft+DIL+Multi,
# 5 Soft+Quad+DIL+Multi, 6 Soft+DIL+SAC+Multi, 8 full) x three seeds,
# ImageNet MobileNet-0.25 at 128x64 (train_scripts/configs/sal_cuhk03_*.yaml;
# the setting and why it was fixed before any result are in sal_cuhk03_base.yaml),
# then tabled without and with re-ranking by evaluation/sal_table.py.
#
#   train_scripts/sal_cuhk03_table.sh RUNS CUHK03_ROOT MOBILENET_WEIGHTS
#
# RUNS receives RUNS/<row>_s<seed> and RUNS/table.md. One run at a time;
# re-running the script skips finished runs and resumes an interrupted one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/run_queue.sh"
check_cuhk03_arguments "$0" "$@"
rows="8_full 6_soft_dil_sac_multi 4_soft_dil_multi 5_soft_quad_dil_multi 1_soft 3_soft_quad 3t_soft_triplet"
run_queue sal "$runs" sal_cuhk03_ "$rows" "0 1 2" "${paths[@]}"
python "$here/../evaluation/sal_table.py" "$runs"/*_s? --data "cuhk03_folders:$root" --both \
    --out "$runs/table.md"

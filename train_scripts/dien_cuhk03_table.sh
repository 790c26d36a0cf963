#!/usr/bin/env bash
# DIEN's Table I from synthetic to real cameras: synth-a (labelled) -> CUHK03
# (its train split unlabelled), scored on CUHK03's 100 held-out people: the six
# rows (Base, +TL, +CCCDTL, +DC, +CCCDTL+DC, +CCCDTL+DC+RTDA(T=3)) and the five
# controls (the summed CCCDTL, lam = 1/64, the ramped reversal, the trunk at 1e-3,
# Base on cross-domain batches), three seeds each, ImageNet MobileNet-0.25 at
# 128x64 (train_scripts/configs/dien_cuhk03*.yaml; dien_cuhk03.yaml says why).
#
#   train_scripts/dien_cuhk03_table.sh RUNS CUHK03_ROOT MOBILENET_WEIGHTS
#
# RUNS receives RUNS/<row>_s<seed> and RUNS/table.md. One run at a time;
# re-running the script skips finished runs and resumes an interrupted one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/run_queue.sh"
check_cuhk03_arguments "$0" "$@"
rows="tl cccdtl dc cccdtl_dc rtda_t3"
controls="control_sum control_lam control_ramp control_trunk control_base_cross"
weights=${paths[1]}
# Base trains on the source alone (no target); every other row adapts to CUHK03,
# the target (the table scripts' paths point data.train at it: not here).
run_queue dien "$runs" dien_cuhk03_ base "0 1 2" "$weights"
run_queue dien "$runs" dien_cuhk03_ "$rows $controls" "0 1 2" "data.target=cuhk03_folders:$root" \
    "$weights"
python "$here/../evaluation/dien_table.py" "$runs"/*_s? --data "cuhk03_folders:$root" \
    --out "$runs/table.md"

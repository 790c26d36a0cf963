#!/usr/bin/env bash
# The SynthReID form of SAL's ablation (Table 1): rows 1 (Soft), 3 (Soft+Quad),
# 3(T) (Soft+Triplet), 4 (Soft+DIL+Multi), 5 (Soft+Quad+DIL+Multi), 6
# (Soft+DIL+SAC+Multi) and 8 (full) x three seeds, MobileNet-0.25 at 128x64
# from ImageNet, trained and scored in-domain on synth-b
# (train_scripts/configs/sal_synth_*.yaml), then tabled without and with
# re-ranking by evaluation/sal_table.py.
#
#   train_scripts/sal_synth_table.sh RUNS MOBILENET_WEIGHTS
#
# RUNS receives one folder per run, RUNS/<row>_s<seed>, and RUNS/table.md.
# MOBILENET_WEIGHTS is the ImageNet no-top file mobilenet_2_5_224_tf_no_top.h5
# (alpha 0.25). Two queues train side by side; re-running the script skips
# finished runs and resumes interrupted ones.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/run_queue.sh"
check_table_arguments "$0" "$@"
runs=$1
weights=$2
seeds="0 1 2"
run_queue sal "$runs" sal_synth_ "8_full 3_soft_quad 1_soft 4_soft_dil_multi" "$seeds" \
    "model.weights=$weights" & first=$!
run_queue sal "$runs" sal_synth_ "5_soft_quad_dil_multi 3t_soft_triplet 6_soft_dil_sac_multi" \
    "$seeds" "model.weights=$weights" & second=$!
status=0
wait "$first" || status=1
wait "$second" || status=1
[[ $status -eq 0 ]] || exit 1
python "$here/../evaluation/sal_table.py" "$runs"/*_s? --data synth-b --both --out "$runs/table.md"

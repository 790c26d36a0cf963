#!/usr/bin/env bash
# The SynthReID form of DIEN's Table I, both ways: synth-a -> synth-b and
# synth-b -> synth-a, rows Base, +TL, +CCCDTL, +DC, +CCCDTL+DC and
# +CCCDTL+DC+RTDA (T=3) x three seeds, MobileNet-0.25 at 128x64 from ImageNet
# (train_scripts/configs/dien_synth_*.yaml), each scored on its target's test
# split by evaluation/dien_table.py.
#
#   train_scripts/dien_synth_table.sh RUNS MOBILENET_WEIGHTS
#
# RUNS receives RUNS/ab/<row>_s<seed> and RUNS/ba/<row>_s<seed>, and the tables
# RUNS/ab/table.md and RUNS/ba/table.md. MOBILENET_WEIGHTS is the ImageNet
# no-top file mobilenet_2_5_224_tf_no_top.h5 (alpha 0.25). The two transfers
# train side by side; re-running the script skips finished runs and resumes
# interrupted ones. DIEN_T_SWEEP=1 also trains T = 1, 2, 4, 5 on synth-a -> synth-b
# (three seeds each) before the tables.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/run_queue.sh"
check_table_arguments "$0" "$@"
runs=$1
weights=$2
rows="base tl cccdtl dc cccdtl_dc rtda_t3"
seeds="0 1 2"
run_queue dien "$runs/ab" dien_synth_ab_ "$rows" "$seeds" "model.weights=$weights" & first=$!
run_queue dien "$runs/ba" dien_synth_ba_ "$rows" "$seeds" "model.weights=$weights" & second=$!
status=0
wait "$first" || status=1
wait "$second" || status=1
[[ $status -eq 0 ]] || exit 1
if [[ ${DIEN_T_SWEEP:-0} == 1 ]]; then
    # The RTDA loop count T = 1..5 of Table I (the paper's peak near T = 3), synth-a -> synth-b.
    run_queue dien "$runs/ab" dien_synth_ab_ "rtda_t1 rtda_t2" "$seeds" "model.weights=$weights" &
    first=$!
    run_queue dien "$runs/ab" dien_synth_ab_ "rtda_t4 rtda_t5" "$seeds" "model.weights=$weights" &
    second=$!
    wait "$first" || status=1
    wait "$second" || status=1
    [[ $status -eq 0 ]] || exit 1
fi
python "$here/../evaluation/dien_table.py" "$runs"/ab/*_s? --data synth-b --out "$runs/ab/table.md"
python "$here/../evaluation/dien_table.py" "$runs"/ba/*_s? --data synth-a --out "$runs/ba/table.md"

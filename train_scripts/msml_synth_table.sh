#!/usr/bin/env bash
# The SynthReID form of the MSML paper's Table 1: five losses (Cls, Tri, Quad,
# TriHard, MSML) x two trunks x three seeds, trained on synth-a + synth-b +
# synth-c in one identity space (train_scripts/configs/msml_synth_*.yaml), then
# scored in-domain on each preset by evaluation/msml_table.py.
#
#   train_scripts/msml_synth_table.sh RUNS [MOBILENET_WEIGHTS]
#
# RUNS receives one folder per run, RUNS/<trunk>/<loss>_s<seed>, and
# RUNS/table.md. The trunks: small_convnet at 64x32 from scratch, and
# MobileNet-0.25 at 128x64 from the ImageNet no-top file MOBILENET_WEIGHTS
# (mobilenet_2_5_224_tf_no_top.h5; without it only small_convnet runs). The
# two trunks train side by side (one of these small models keeps ~1.2 of the
# 2 cores busy). Re-running the script skips finished runs and resumes
# interrupted ones, so it can be stopped at any point. Each run takes ~3-5
# min on 2 cores; all 30 with their scoring about 1.5 h.
set -euo pipefail
if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 RUNS [MOBILENET_WEIGHTS]" >&2
    exit 2
fi
runs=$1
weights=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/run_queue.sh"
if [[ -n $weights && ! -f $weights ]]; then
    echo "$0: error: no MobileNet weight file at $weights; give the ImageNet no-top .h5 file (alpha 0.25) or leave it out." >&2
    exit 2
fi
losses="cls tri quad trihard msml"
seeds="0 1 2"
pids=()
run_queue msml "$runs/small_convnet" msml_synth_ "$losses" "$seeds" & pids+=($!)
if [[ -n $weights ]]; then
    run_queue msml "$runs/mobilenet025" msml_synth_ "$losses" "$seeds" \
        model.backbone=mobilenet "model.input_shape=[128, 64, 3]" "model.weights=$weights" \
        "model.backbone_options={alpha: 0.25}" model.bn_momentum=null &
    pids+=($!)
else
    echo "no MobileNet weight file given: training small_convnet only" >&2
fi
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=1
done
[[ $status -eq 0 ]] || exit 1
python "$here/../evaluation/msml_table.py" "$runs"/*/*_s? --data synth-a synth-b synth-c \
    --out "$runs/table.md"

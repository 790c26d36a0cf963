#!/usr/bin/env bash
# EmbAE's Tables 1-4 on SynthReID with a realistic gap: synth-a (one source) or
# synth-a + synth-c (two) -> synth-d, seeds 0-4. Per setting and seed:
#   stage1_<setting>_s<seed>   the stage-1 embedding (embedding_synth_imagenet.yaml)
#   embae_<setting>_s<seed>    EmbAE from it: baseline, every variant, bn_adapt
#                              (embae_synth_gap[_multi].yaml, embedding.model_path)
#   pulemb_<setting>_s<seed>   PUL started from the same stage-1 embedding
#                              (pul_synth_gap_from_embedding.yaml)
#   pul_<setting>_s<seed>      baseline PUL: its own classification-trained start
#                              (pul_synth_gap[_multi].yaml)
# then evaluation/embae_gap_table.py writes RUNS/table.md.
#
#   train_scripts/embae_synth_gap_table.sh RUNS MOBILENET_WEIGHTS
#
# MOBILENET_WEIGHTS is the ImageNet no-top file mobilenet_2_5_224_tf_no_top.h5
# (alpha 0.25). The two settings train side by side; re-running the script
# skips finished runs and resumes interrupted ones. SEEDS="0 1" overrides the seeds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/run_queue.sh"
check_table_arguments "$0" "$@"
runs=$1
weights=$2
seeds=${SEEDS:-0 1 2 3 4}

# The EmbAE runs of a setting (stage 1, then EmbAE from it), seed by seed.
embae_runs() {
    local setting=$1 sources=$2 suffix=$3 seed stage1
    for seed in $seeds; do
        stage1=$runs/stage1_${setting}_s$seed
        run_one embedding "$stage1" model.keras embedding_synth_imagenet.yaml \
            "model.weights=$weights" "data.train=$sources" "train.seed=$seed"
        run_one embae "$runs/embae_${setting}_s$seed" results.csv "embae_synth_gap$suffix.yaml" \
            "embedding.model_path=$stage1/model.keras" "train.seed=$seed"
    done
}

# The PUL runs of a setting (from the stage-1 embedding; baseline PUL), seed by seed.
pul_runs() {
    local setting=$1 suffix=$2 seed stage1
    for seed in $seeds; do
        stage1=$runs/stage1_${setting}_s$seed
        run_one pul "$runs/pulemb_${setting}_s$seed" results.csv pul_synth_gap_from_embedding.yaml \
            "start.model_path=$stage1/model.keras" "train.seed=$seed"
        run_one pul "$runs/pul_${setting}_s$seed" results.csv "pul_synth_gap$suffix.yaml" \
            "start.train.model.weights=$weights" "train.seed=$seed"
    done
}

mkdir -p "$runs"
# EmbAE's rows first (every seed), then PUL's: a stopped table has its main rows.
{ embae_runs one "[synth-a]" "" && pul_runs one ""; } & first=$!
{ embae_runs two "[synth-a,synth-c]" _multi && pul_runs two _multi; } & second=$!
status=0
wait "$first" || status=1
wait "$second" || status=1
[[ $status -eq 0 ]] || exit 1
python "$here/../evaluation/embae_gap_table.py" "$runs" --out "$runs/table.md"

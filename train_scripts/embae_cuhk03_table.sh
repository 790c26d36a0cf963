#!/usr/bin/env bash
# EmbAE's Tables 1-4 from synthetic to real cameras: synth-a (one source) or
# synth-a + synth-c (two) -> CUHK03 (its train split unlabelled), scored on
# CUHK03's 100 held-out people, seeds 0-4. Per setting and seed:
#   stage1_<setting>_s<seed>   the stage-1 embedding (embedding_synth_imagenet.yaml,
#                              validated on CUHK03)
#   embae_<setting>_s<seed>    EmbAE from it: baseline, every variant, bn_adapt
#                              (embae_cuhk03[_multi].yaml, embedding.model_path)
#   pulemb_<setting>_s<seed>   PUL started from the same stage-1 embedding
#                              (pul_cuhk03_from_embedding.yaml)
#   pul_<setting>_s<seed>      baseline PUL: its own classification-trained start
#                              (pul_cuhk03[_multi].yaml)
# then evaluation/embae_gap_table.py writes RUNS/table.md.
#
#   train_scripts/embae_cuhk03_table.sh RUNS CUHK03_ROOT MOBILENET_WEIGHTS
#
# One run at a time; re-running the script skips finished runs and resumes an
# interrupted one (SEEDS="0 1" for fewer seeds).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/run_queue.sh"
check_cuhk03_arguments "$0" "$@"
weights=${paths[1]#model.weights=}
target=cuhk03_folders:$root
seeds=${SEEDS:-0 1 2 3 4}

mkdir -p "$runs"
for seed in $seeds; do
    for setting in one two; do
        sources="[synth-a]" suffix=""
        [[ $setting == two ]] && sources="[synth-a,synth-c]" suffix=_multi
        stage1=$runs/stage1_${setting}_s$seed
        run_one embedding "$stage1" model.keras embedding_synth_imagenet.yaml \
            "model.weights=$weights" "data.train=$sources" "data.val=$target" "train.seed=$seed"
        run_one embae "$runs/embae_${setting}_s$seed" results.csv "embae_cuhk03$suffix.yaml" \
            "embedding.model_path=$stage1/model.keras" "data.target=$target" "train.seed=$seed"
        run_one pul "$runs/pulemb_${setting}_s$seed" results.csv pul_cuhk03_from_embedding.yaml \
            "start.model_path=$stage1/model.keras" "data.target=$target" "train.seed=$seed"
        run_one pul "$runs/pul_${setting}_s$seed" results.csv "pul_cuhk03$suffix.yaml" \
            "start.train.model.weights=$weights" "data.target=$target" "train.seed=$seed"
    done
done
python "$here/../evaluation/embae_gap_table.py" "$runs" --target CUHK03 --out "$runs/table.md"

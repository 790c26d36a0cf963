#!/usr/bin/env bash
# The MSML paper's Table 1 on real photos (CUHK03, labelled crops): the five
# rows (Cls, Tri, Quad, TriHard, MSML, each beside softmax) x three seeds, then
# the budget experiment (TriHard and MSML with 4x the steps) x three seeds,
# ImageNet MobileNet-0.25 at 128x64 (train_scripts/configs/msml_cuhk03_*.yaml;
# the setting and why it was fixed before any result are in msml_cuhk03_base.yaml).
#
#   train_scripts/msml_cuhk03_table.sh RUNS CUHK03_ROOT MOBILENET_WEIGHTS
#
# CUHK03_ROOT holds train/ and val/ (e.g. ../shared/data/cuhk03_labeled);
# MOBILENET_WEIGHTS is mobilenet_2_5_224_tf_no_top.h5. RUNS receives
# RUNS/<row>_s<seed>, RUNS/long/<row>_s<seed>, and the tables RUNS/table.md
# and RUNS/long/table.md (plain and re-ranked). One run at a time; re-running
# the script skips finished runs and resumes an interrupted one, so the queue
# can be stopped at any point and continued in another session.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/run_queue.sh"
check_cuhk03_arguments "$0" "$@"
seeds="0 1 2"
run_queue msml "$runs" msml_cuhk03_ "cls tri quad trihard msml" "$seeds" "${paths[@]}"
run_queue msml "$runs/long" msml_cuhk03_long_ "trihard msml" "$seeds" "${paths[@]}"
table="$here/../evaluation/msml_table.py"
python "$table" "$runs"/*_s? --data "cuhk03_folders:$root" --both --out "$runs/table.md"
python "$table" "$runs"/long/*_s? --data "cuhk03_folders:$root" --both --out "$runs/long/table.md"

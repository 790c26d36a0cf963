# Sourced by the *_table.sh scripts: train a queue of configs x seeds in turn.
#
#   run_queue RECIPE RUNS PREFIX "NAME..." "SEED..." [section.key=value ...]
#
# NAME's config is configs/PREFIX<NAME>.yaml; its run for a seed goes to
# RUNS/<NAME>_s<seed>, with the overrides and train.seed (its log beside it, appended);
# a finished run (model.keras written) is skipped, an interrupted one resumed,
# so a table script can be stopped and started again at any point.
run_queue() {
    local recipe=$1 runs=$2 prefix=$3 names=$4 seeds=$5 seed name
    shift 5
    mkdir -p "$runs"
    for seed in $seeds; do
        for name in $names; do
            run_one "$recipe" "$runs/${name}_s$seed" model.keras "$prefix$name.yaml" \
                "train.seed=$seed" "$@" || return 1
        done
    done
}

# run_one RECIPE OUT DONE_FILE CONFIG [section.key=value ...]: one run of
# configs/CONFIG into OUT, skipped when OUT/DONE_FILE exists (model.keras, or a
# recipe's results.csv), resumed when OUT exists, logged to OUT.log (appended).
run_one() {
    local recipe=$1 out=$2 done=$3 config=$4 configs
    configs=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/configs
    shift 4
    [[ -f $out/$done ]] && return 0
    local resume=()
    [[ -d $out ]] && resume=(--resume)
    keras-reid train "$recipe" --config "$configs/$config" --out "$out" "${resume[@]}" "$@" \
        >> "$out.log" 2>&1 || { echo "error: $out failed; see $out.log" >&2; return 1; }
}

# The arguments of a MobileNet-0.25 table script, "$0" "$@": exactly RUNS and an
# existing MOBILENET_WEIGHTS file, else a usage line or a one-line error (exit 2).
check_table_arguments() {
    local script=$1
    shift
    if [[ $# -ne 2 ]]; then
        echo "usage: $script RUNS MOBILENET_WEIGHTS" >&2
        exit 2
    fi
    if [[ ! -f $2 ]]; then
        echo "$script: error: no MobileNet weight file at $2; give the ImageNet no-top .h5 file (alpha 0.25)." >&2
        exit 2
    fi
}

# The arguments of a CUHK03 table script, "$0" "$@": exactly RUNS, a CUHK03_ROOT
# folder (train/ and val/) and an existing MOBILENET_WEIGHTS file, else a usage
# line or a one-line error (exit 2). Sets runs, root (absolute) and paths, the
# overrides that point a config at both.
check_cuhk03_arguments() {
    local script=$1 weights
    shift
    if [[ $# -ne 3 ]]; then
        echo "usage: $script RUNS CUHK03_ROOT MOBILENET_WEIGHTS" >&2
        exit 2
    fi
    runs=$1
    root=$(cd "$2" 2>/dev/null && pwd) || {
        echo "$script: error: no folder $2; give the folder holding CUHK03's train/ and val/." >&2
        exit 2
    }
    if [[ ! -f $3 ]]; then
        echo "$script: error: no MobileNet weight file at $3; give the ImageNet no-top .h5 file (alpha 0.25)." >&2
        exit 2
    fi
    weights=$(cd "$(dirname "$3")" && pwd)/$(basename "$3")
    paths=("data.train=[cuhk03_folders:$root]" "model.weights=$weights")
}

# Sourced by the *_table.sh scripts: train a queue of configs x seeds in turn.
#
#   run_queue RECIPE RUNS PREFIX "NAME..." "SEED..." [section.key=value ...]
#
# NAME's config is configs/PREFIX<NAME>.yaml; its run for a seed goes to
# RUNS/<NAME>_s<seed>, with the overrides and train.seed (its log beside it, appended);
# a finished run (model.keras written) is skipped, an interrupted one resumed,
# so a table script can be stopped and started again at any point.
run_queue() {
    local recipe=$1 runs=$2 prefix=$3 names=$4 seeds=$5 seed name out configs
    configs=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/configs
    shift 5
    mkdir -p "$runs"
    for seed in $seeds; do
        for name in $names; do
            out=$runs/${name}_s$seed
            if [[ -f $out/model.keras ]]; then
                continue
            fi
            local resume=()
            if [[ -d $out ]]; then
                resume=(--resume)
            fi
            keras-reid train "$recipe" --config "$configs/$prefix$name.yaml" --out "$out" \
                "${resume[@]}" "train.seed=$seed" "$@" >> "$out.log" 2>&1 \
                || { echo "error: $out failed; see $out.log" >&2; return 1; }
        done
    done
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

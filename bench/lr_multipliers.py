"""Per-module learning rates: seconds per training step, Adam alone vs LayerwiseOptimizer.

A MobileNet alpha 0.25 embedding model (weights=None) at 128x64, batch 72
(P=18 x K=4, batch-hard triplet loss), trained with ``model.fit`` on one
in-memory batch: Adam alone, then Adam through ``build_optimizer`` with
``lr_multipliers={"trunk": 0.1}`` (two groups: trunk and head). The two are
timed in alternation, ``--repeats`` rounds each; the overhead is taken from
the fastest round of each (the CPU is shared: the minimum is the least
disturbed) and from the medians, in wall-clock seconds and in this
process's CPU seconds (all its threads; less sensitive to other processes
on a shared machine). The optimizer update alone (``apply`` of fixed
gradients in a ``tf.function``) is timed the same way, since it is the only
part the two runs do differently. Target: overhead <= 5%.

    python bench/lr_multipliers.py [--steps 10] [--repeats 15]
"""

import argparse
import functools
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

import keras_reid  # noqa: F401  (registers custom objects)
from keras_reid.losses import BatchHardTripletLoss
from keras_reid.models import build_embedding_model
from keras_reid.training.optimizers import build_optimizer


def compiled_model(lr_multipliers):
    keras.utils.set_random_seed(0)
    model = build_embedding_model("mobilenet", alpha=0.25, input_shape=(128, 64, 3))
    optimizer = build_optimizer(model, 1e-4, "adam", lr_multipliers=lr_multipliers)
    model.compile(optimizer=optimizer, loss={"embedding": BatchHardTripletLoss()})
    return model


def fit_timer(model, dataset, clock, steps):
    start = clock()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return (clock() - start) / steps


def update_step(model, clock):
    """One traced optimizer update with fixed gradients; returns a timer of ``n`` updates."""
    variables = model.trainable_variables
    grads = [tf.random.normal(v.shape, stddev=1e-3, seed=0) for v in variables]
    apply = tf.function(lambda: model.optimizer.apply(grads, variables))

    run_ops = len(apply.get_concrete_function().graph.get_operations())

    def run(steps):
        start = clock()
        for _ in range(steps):
            apply()
        return (clock() - start) / steps

    run.ops = run_ops
    return run


def timed(runs, repeats, steps):
    """``{name: [seconds per step of each round]}``, the runs taken in alternation."""
    for run in runs.values():
        run(3)  # trace and warm up
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(run(steps))
    return times


def report(title, times, unit=1.0, unit_name="s"):
    print(title)
    print(f"  {'optimizer':24s} {'min ' + unit_name:>10s} {'median ' + unit_name:>10s}")
    for name, values in times.items():
        print(f"  {name:24s} {min(values) * unit:10.4f} {statistics.median(values) * unit:10.4f}")
    plain, layerwise = times.values()
    print(
        f"  overhead: {100 * (min(layerwise) / min(plain) - 1):+.1f}% (min), "
        f"{100 * (statistics.median(layerwise) / statistics.median(plain) - 1):+.1f}% (median)"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds per optimizer")
    parser.add_argument("--p", type=int, default=18)
    parser.add_argument("--k", type=int, default=4)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    batch = args.p * args.k
    images = rng.uniform(0, 255, (batch, 128, 64, 3)).astype("float32")
    pids = np.repeat(np.arange(args.p), args.k).astype("int32")
    dataset = tf.data.Dataset.from_tensors((images, {"embedding": pids})).repeat()

    models = {"adam": compiled_model(None), "adam + lr_multipliers": compiled_model({"trunk": 0.1})}
    print(f"groups {{factor: variables}}: {models['adam + lr_multipliers'].optimizer.factors}")
    for clock_name, clock in (("wall", time.perf_counter), ("CPU", time.process_time)):
        steps = {name: functools.partial(fit_timer, model, dataset, clock)
                 for name, model in models.items()}  # fmt: skip
        report(
            f"training step, {clock_name} time: MobileNet-0.25 at 128x64, batch {batch} "
            f"({args.repeats} rounds x {args.steps} steps; target <= 5%)",
            timed(steps, args.repeats, args.steps),
        )
        updates = {name: update_step(model, clock) for name, model in models.items()}
        if clock_name == "wall":
            counts = ", ".join(f"{name}: {run.ops}" for name, run in updates.items())
            print(f"graph ops of one traced update: {counts}")
        report(
            f"optimizer update alone (apply, traced), {clock_name} time",
            timed(updates, args.repeats, 10 * args.steps),
            unit=1000,
            unit_name="ms",
        )


if __name__ == "__main__":
    main()

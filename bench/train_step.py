"""Training throughput: the bare Keras step versus end-to-end training from disk.

Prints images/s of ``model.fit`` on an in-memory batch (the bare step) and on
``pk_batches`` reading SynthReID JPEGs from disk (the real pipeline), with and
without the decoded-image cache, for every trunk and head (``build_model``'s
trinet, msml and sal) at a CPU size and at the paper size. trinet trains with
the batch-hard triplet loss on "embedding"; msml adds softmax cross-entropy on
"logits", as the MSML recipe does; sal trains softmax, the self-attention
constraint and quadruplet-hard (its stage 2), and "sal_plain" is the same head
on the undilated trunk without stage 6 (the cost of the dilated stages);
"dien-t<T>" is DIEN's full model (IC, CCCDTL, DC behind the reversal) with T
loops of recurrent top-down attention, t0 without RTDA (the cost of each T).
Target: end to end >= 90% of the bare step.

    python bench/train_step.py [--configs cpu|paper|all|NAME,...] [--steps-scale 1] [--repeats 3]

Configs are named head-trunk-size; "cpu" (default) runs the CPU sizes (64x32
or 128x64), "paper" the paper sizes (256x128 for TriNet-MobileNet, 224x224
for the MSML trunks; a few steps each: slow on CPU).
"""

import argparse
import os
import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import keras_reid  # noqa: F401  (registers custom objects)
from keras_reid.data import load_dataset, pk_batches
from keras_reid.data.synthreid import generate
from keras_reid.losses import (
    BatchHardTripletLoss,
    CrossDomainTripletLoss,
    DomainCrossEntropy,
    QuadrupletLoss,
    SelfAttentionConstraint,
    SoftmaxCrossEntropy,
)
from keras_reid.models import build_model


def _config(head, backbone, size, steps, group, model=None, **options):
    return {
        "head": head,
        "backbone": backbone,
        "size": size,
        "steps": steps,
        "group": group,
        "model": model or {},
        "options": options,
    }


# SAL without DIL (and so without stage 6, multi-level feature or attention
# maps): the plain strided trunk and head that the dilated network is compared with.
PLAIN = {"dilation": 1, "stage6": False, "multi_level": False, "attention": False}


CONFIGS = {
    # The SynthReID configs' trunks, as before (synth, mobilenet-small, paper).
    "trinet-small_convnet-64x32": _config("trinet", "small_convnet", (64, 32), 40, "cpu"),
    "trinet-mobilenet025-64x32": _config("trinet", "mobilenet", (64, 32), 60, "cpu", alpha=0.25),
    "trinet-mobilenet-256x128": _config("trinet", "mobilenet", (256, 128), 6, "paper", alpha=1.0),
    "msml-small_convnet-64x32": _config("msml", "small_convnet", (64, 32), 40, "cpu"),
    "msml-mobilenet025-128x64": _config("msml", "mobilenet", (128, 64), 20, "cpu", alpha=0.25),
}
# The self-attention model (dilated stages 4-6, stage 6, multi-level, attention
# maps, softmax + SAC + quadruplet-hard) and the same head on the plain trunk.
for _trunk, _cpu, _paper in (
    ("mobilenet", (128, 64), (256, 128)),
    ("resnet50", (128, 64), (256, 128)),
):
    _tag = "mobilenet025" if _trunk == "mobilenet" else _trunk
    _alpha = {"alpha": 0.25} if _trunk == "mobilenet" else {}
    _steps = 20 if _trunk == "mobilenet" else 4
    for _head, _model in (("sal", None), ("sal_plain", PLAIN)):
        CONFIGS[f"{_head}-{_tag}-{_cpu[0]}x{_cpu[1]}"] = _config(
            "sal", _trunk, _cpu, _steps, "cpu", _model, **_alpha
        )
        CONFIGS[f"{_head}-{_tag}-{_paper[0]}x{_paper[1]}"] = _config(
            "sal", _trunk, _paper, max(2, _steps // 4), "paper", _model, **_alpha
        )
# DIEN with T = 0 (no RTDA) to 5 loops: MobileNet-0.25 at the SynthReID size,
# ResNet50 at the paper's 256x128 (T = 0 and 3: slow on CPU).
for _loops in range(6):
    CONFIGS[f"dien-t{_loops}-mobilenet025-128x64"] = _config(
        "dien", "mobilenet", (128, 64), 20, "cpu", {"attention_loops": _loops or None}, alpha=0.25
    )
for _loops in (0, 3):
    CONFIGS[f"dien-t{_loops}-resnet50-256x128"] = _config(
        "dien", "resnet50", (256, 128), 2, "paper", {"attention_loops": _loops or None}
    )
for _trunk in ("resnet50", "bn_inception", "resnext50"):
    CONFIGS[f"trinet-{_trunk}-128x64"] = _config("trinet", _trunk, (128, 64), 4, "cpu")
    CONFIGS[f"msml-{_trunk}-128x64"] = _config("msml", _trunk, (128, 64), 4, "cpu")
    CONFIGS[f"msml-{_trunk}-224x224"] = _config("msml", _trunk, (224, 224), 2, "paper")


def compiled_model(config, num_classes):
    args = {"backbone": config["backbone"], "input_shape": (*config["size"], 3), **config["model"]}
    options = dict(config["options"])
    if config["head"] == "trinet":
        args["alpha"] = options.pop("alpha", 1.0)
    args["backbone_options"] = options
    losses = {"embedding": BatchHardTripletLoss()}
    if config["head"] in ("msml", "sal", "dien"):
        args["num_classes"] = num_classes
        losses["logits"] = SoftmaxCrossEntropy()
    if config["head"] == "dien":
        args["domain_classifier"] = True
        losses["embedding"] = CrossDomainTripletLoss(0.3, lam=1.0)
        losses["domain"] = DomainCrossEntropy()
    if config["head"] == "sal":
        losses["embedding"] = QuadrupletLoss(0.5, 0.2, mining="hard")
        if args.get("attention", True):
            losses["attention"] = SelfAttentionConstraint()
    model = build_model(config["head"], **args)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=losses)
    return model


class _StepTimes(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def images_per_second(model, dataset, steps, batch, warmup=3):
    """Training images/s over ``steps`` steps of one fit, after ``warmup`` steps of the same.

    Timed between batch ends inside one ``model.fit`` (one iterator over the
    stream, as a training run has): neither the fit's start nor the stream's
    start-up (its sampler and prefetch buffers filling) is counted.
    """
    times = _StepTimes()
    model.fit(
        dataset,
        steps_per_epoch=warmup + steps,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=[times],
    )
    return steps * batch / (times.times[-1] - times.times[warmup - 1])


def selected(names):
    if names in ("cpu", "paper"):
        return [name for name, config in CONFIGS.items() if config["group"] == names]
    if names == "all":
        return list(CONFIGS)
    unknown = [name for name in names.split(",") if name not in CONFIGS]
    if unknown:
        raise SystemExit(
            f"unknown config(s) {unknown}; expected cpu, paper, all or {list(CONFIGS)}"
        )
    return names.split(",")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="cpu")
    parser.add_argument("--p", type=int, default=18)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply the step counts")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per config (median)")
    args = parser.parse_args()
    batch = args.p * args.k
    with tempfile.TemporaryDirectory() as tmp:
        root = generate("synth-a", os.path.join(tmp, "synth-a"), ids=120, size=(128, 64))
        table = load_dataset("synth-a", root, ids=120).train
        # Class indices for the classifier: the bench's one table, relabelled 0..C-1.
        classes = {pid: index for index, pid in enumerate(sorted(set(table.pid)))}
        table = table.assign(pid=table.pid.map(classes))
        print(
            f"{'config':30s} {'bare img/s':>11s} {'disk img/s':>11s} {'ratio':>6s} "
            f"{'disk+cache img/s':>17s} {'ratio':>6s}",
            flush=True,
        )
        for name in selected(args.configs):
            config = CONFIGS[name]
            steps = max(2, int(config["steps"] * args.steps_scale))
            model = compiled_model(config, len(classes))
            outputs = model.output_names

            def targets(x, y, outputs=outputs):
                return x, {output: y for output in outputs}

            rng = np.random.default_rng(0)
            images = rng.uniform(0, 255, (batch, *config["size"], 3)).astype("float32")
            pids = np.repeat(np.arange(args.p), args.k).astype("int32")
            streams = [tf.data.Dataset.from_tensors(targets(images, pids)).repeat()]
            for cache in (False, True):
                streams.append(
                    pk_batches(
                        table, args.p, args.k, image_size=config["size"], seed=0, cache=cache
                    ).map(targets)
                )
            # Interleaved rounds, the median of each: this 2-core VM now and then
            # runs a whole measurement at half speed, which one round would keep.
            rounds = [
                [images_per_second(model, stream, steps, batch) for stream in streams]
                for _ in range(args.repeats)
            ]
            bare_rate, *rates = (statistics.median(column) for column in zip(*rounds, strict=True))
            print(
                f"{name:30s} {bare_rate:11.1f} {rates[0]:11.1f} {rates[0] / bare_rate:6.2f} "
                f"{rates[1]:17.1f} {rates[1] / bare_rate:6.2f}",
                flush=True,
            )
            keras.backend.clear_session()


if __name__ == "__main__":
    main()

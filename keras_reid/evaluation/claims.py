"""The papers' tables as rows and claims: which run is which row, and what should beat what.

The MSML paper's Table 1 (:func:`run_labels`, :data:`METHOD_ORDER`,
:data:`MSML_ORDERINGS`), SAL's ablation (:func:`sal_labels`,
:data:`SAL_ORDER`, :data:`SAL_CLAIMS`) and DIEN's Table I with our controls
(:func:`dien_labels`, :data:`DIEN_ORDER`, :data:`DIEN_CLAIMS`,
:data:`DIEN_CONTROLS`): a run's recorded config names its row; the claims
are pairs ``(better, worse)`` that :mod:`keras_reid.evaluation.compare`
checks as paired differences over seeds.
"""

import os

import numpy as np

from keras_reid.errors import ReIDError

# Table 1's rows: the metric loss beside softmax names the method (the paper
# "combine[s] metric learning loss above with classification loss").
METHOD_NAMES = {
    "softmax": "Cls",
    "triplet": "Tri",
    "quadruplet": "Quad",
    "batch_hard": "TriHard",
    "msml": "MSML",
}


METHOD_ORDER = ("Cls", "Tri", "Quad", "TriHard", "MSML")


# The MSML paper's claims (section 4.3): "Tri ... increase[s] by approximately
# 10% compared to baseline", "TriHard and Quad both have better performance
# than triplet loss", "TriHard is a little better [than Quad] on Market1501,
# MARS and CUHK-03", and MSML "gets best accuracy". (better, worse) pairs:
MSML_ORDERINGS = (
    ("Tri", "Cls"),
    ("Quad", "Tri"),
    ("TriHard", "Tri"),
    ("TriHard", "Quad"),
    ("MSML", "TriHard"),
)


# SAL's Table 1 rows (settings 1, 2, 3, 3(T), 4-8) in sal_labels' names, and
# its claims (Sec. 4.3): multi-level features help (4 > 1, 5 > 3), SAC adds
# (6 > 4, 8 > 5), softmax and quadruplet complement each other (3 > 1, 3 > 2),
# quadruplet beats triplet (3 > 3(T)).
SAL_ORDER = (
    "Soft",
    "Quad",
    "Soft+Quad",
    "Soft+Triplet",
    "Soft+DIL+Multi",
    "Soft+Quad+DIL+Multi",
    "Soft+DIL+SAC+Multi",
    "Quad+DIL+SAC+Multi",
    "Soft+Quad+DIL+SAC+Multi",
)


SAL_CLAIMS = (
    ("Soft+DIL+Multi", "Soft"),
    ("Soft+Quad+DIL+Multi", "Soft+Quad"),
    ("Soft+DIL+SAC+Multi", "Soft+DIL+Multi"),
    ("Soft+Quad+DIL+SAC+Multi", "Soft+Quad+DIL+Multi"),
    ("Soft+Quad", "Soft"),
    ("Soft+Quad", "Quad"),
    ("Soft+Quad", "Soft+Triplet"),
)


# The controls that separate our setting from DIEN's method (not the paper's
# claims): the paper's summed CCCDTL (and our mean with its balance, lam =
# 1/64 for 64 source images), Ganin's ramped reversal, the trunk at
# another rate, and Base on the cross-domain batches the other rows train on.
DIEN_CONTROLS = (
    ("+CCCDTL(sum)+DC", "+CCCDTL+DC"),
    ("+CCCDTL(lam 0.015625)+DC", "+CCCDTL+DC"),
    ("+CCCDTL+DC(ramp)", "+CCCDTL+DC"),
    ("+CCCDTL+DC (trunk lr 0.001)", "+CCCDTL+DC"),
    ("Base (cross-domain batches)", "Base"),
    ("+CCCDTL+DC", "Base (cross-domain batches)"),
)


# DIEN's Table I rows in dien_labels' names, and its claims (Sec. IV-B):
# CCCDTL beats TL beats Base, DC helps, CCCDTL and DC add up, RTDA helps.
DIEN_ORDER = (
    "Base",
    "+TL",
    "+CCCDTL",
    "+DC",
    "+CCCDTL+DC",
    *(f"+CCCDTL+DC+RTDA(T={t})" for t in range(1, 6)),
    *(better for better, _ in DIEN_CONTROLS[:5]),
)


DIEN_CLAIMS = (
    ("+TL", "Base"),
    ("+CCCDTL", "+TL"),
    ("+DC", "Base"),
    ("+CCCDTL+DC", "+CCCDTL"),
    ("+CCCDTL+DC", "+DC"),
    ("+CCCDTL+DC+RTDA(T=3)", "+CCCDTL+DC"),
)


DIEN_SCORES = ("rank1", "rank5", "rank10", "mAP")


# The trunk's rates of DIEN's rows: the paper's (1e-4, its ResNet50 configs) and
# that of every row we tabled (1e-2; dien_synth_base.yaml says why). A row at
# another rate (a control) says so in its setting.
DIEN_TRUNK_LRS = (1e-4, 1e-2)


# What a DIEN row's log.csv tells at its last epoch: whether the domain
# classifier still tells the domains apart (loss ln 2 and accuracy 0.5: no longer).
DIEN_LOG_COLUMNS = ("domain_loss", "domain_accuracy")


def _read_config(run):
    import yaml

    path = os.path.join(run, "config.yaml")
    if not os.path.isfile(path):
        raise ReIDError(f"{run}: no config.yaml; give run folders written by keras-reid train.")
    with open(path, encoding="utf-8") as stream:
        return yaml.safe_load(stream) or {}


def run_labels(config):
    """``(trunk, method, seed)`` of a run's recorded config.

    The trunk is the backbone with its width (``alpha``) and input size, e.g.
    ``"mobilenet-0.25 128x64"``. The method is the metric loss's name in the
    paper's words (:data:`METHOD_NAMES`): ``"Cls"`` for softmax alone, the
    metric loss's for softmax + metric loss, ``"TriHard (no Cls)"`` for a
    metric loss alone. A hard-mined quadruplet loss is ``"QuadHard"``.

    Example:
        >>> run_labels({"model": {"backbone": "resnet50", "input_shape": [224, 224, 3]},
        ...             "losses": {"logits": {"name": "softmax"},
        ...                        "embedding": {"name": "msml"}}, "train": {"seed": 1}})
        ('resnet50 224x224', 'MSML', 1)
    """
    model = config.get("model") or {}
    trunk = str(model.get("backbone", model.get("name", "?")))
    alpha = (model.get("backbone_options") or {}).get("alpha", model.get("alpha"))
    if alpha is not None:
        trunk += f"-{alpha}"
    shape = model.get("input_shape")
    if shape:
        trunk += f" {shape[0]}x{shape[1]}"
    losses = config.get("losses") or {}
    names = []
    for spec in losses.values():
        name = spec.get("name", "batch_hard") if isinstance(spec, dict) else str(spec)
        label = METHOD_NAMES.get(name, name)
        if name == "quadruplet" and spec.get("mining", "hard") == "hard":
            label = "QuadHard"
        names.append(label)
    metric = [n for n in names if n != "Cls"]
    if not metric:
        method = "Cls" if names else "?"
    else:
        method = " + ".join(metric) + ("" if "Cls" in names else " (no Cls)")
    return trunk, method, int((config.get("train") or {}).get("seed", 0))


def sal_labels(config):
    """``(trunk, setting, seed)`` of a self-attention run, the setting as SAL's Table 1 names it.

    The setting joins what the run trains with, in the table's column order:
    Soft (a softmax loss in any stage), Quad (quadruplet) or Triplet (batch-hard
    triplet), DIL (dilated stages), SAC (the self-attention constraint), Multi
    (multi-level feature): e.g. ``"Soft+Quad+DIL+SAC+Multi"``, the full model.
    """
    from keras_reid.config import merge_config

    stages = list((config.get("stages") or {"": {}}).values())
    finals = [merge_config({k: v for k, v in config.items() if k != "stages"}, s) for s in stages]
    model = finals[-1].get("model") or {}
    names = {spec.get("name") for final in finals for spec in (final.get("losses") or {}).values()}
    parts = [
        ("Soft", "softmax" in names),
        ("Quad", "quadruplet" in names),
        ("Triplet", "batch_hard" in names or "triplet" in names),
        ("DIL", model.get("dilation", [2, 4]) not in (1, [1], (1,))),
        ("SAC", "sac" in names),
        ("Multi", model.get("multi_level", True)),
    ]
    trunk = run_labels({"model": model})[0]
    seed = int((finals[-1].get("train") or {}).get("seed", 0))
    return trunk, "+".join(name for name, present in parts if present), seed


def dien_labels(config):
    """``(trunk, setting, seed)`` of a DIEN run, the setting as DIEN's Table I names its row.

    Base (identity classifier only), then what the run adds: +TL (the
    cross-domain triplet loss with target anchors, Zhong et al.'s), +CCCDTL
    (source anchors and the centering term), +DC (a domain loss), +RTDA(T=n)
    (``model.attention_loops``). The trunk names the source too, e.g.
    ``"mobilenet-0.25 128x64 from synth-a"``.

    The controls (:data:`DIEN_CONTROLS`) are marked where they depart from
    the rows they control: ``+CCCDTL(sum)`` (the paper's summed triplet term),
    ``+CCCDTL(lam X)`` (the centering term's weight, where not 1),
    ``+DC(ramp)`` (``train.reversal_ramp``), ``Base (cross-domain batches)``
    (the identity classifier alone on the other rows' batches) and
    `` (trunk lr X)`` when the trunk's rate (``schedule.base_lr`` times
    ``optimizer.lr_multipliers.trunk``) is none of :data:`DIEN_TRUNK_LRS`.
    """
    from keras_reid.data.dataset import spec_labels

    model = config.get("model") or {}
    losses = list((config.get("losses") or {}).values())
    # In Table I's order, whatever the order of the losses section.
    parts = [
        ("+TL" if spec.get("target_anchors") else "+CCCDTL")
        + ("(sum)" if spec.get("triplet_reduction") == "sum" else "")
        + (
            f"(lam {spec['lam']:g})"
            if not spec.get("target_anchors") and spec.get("lam", 1.0) != 1.0
            else ""
        )
        for spec in losses
        if spec.get("name") == "cross_domain"
    ]
    if any(spec.get("name") == "domain" for spec in losses):
        parts.append("+DC" + ("(ramp)" if (config.get("train") or {}).get("reversal_ramp") else ""))
    if model.get("attention_loops"):
        parts.append(f"+RTDA(T={model['attention_loops']})")
    setting = "".join(parts)
    if not setting:
        cross = (config.get("batches") or {}).get("kind") == "cross_domain"
        setting = "Base (cross-domain batches)" if cross else "Base"
    schedule, optimizer = config.get("schedule") or {}, config.get("optimizer") or {}
    if "base_lr" in schedule:
        rate = schedule["base_lr"] * (optimizer.get("lr_multipliers") or {}).get("trunk", 1.0)
        if not np.isclose(rate, DIEN_TRUNK_LRS, rtol=1e-6, atol=0.0).any():
            setting += f" (trunk lr {rate:g})"
    train = (config.get("data") or {}).get("train") or []
    train = [train] if isinstance(train, (str, dict)) else train
    # The source names the transfer: Base trains without a target.
    trunk = run_labels({"model": model})[0] + " from " + "+".join(spec_labels(train))
    seed = int((config.get("train") or {}).get("seed", 0))
    return trunk, setting, seed

"""DIEN, the domain-invariant embedding network: DIE head, identity and domain classifiers, RTDA.

Pu, Georgiou, Bakker & Lew, "Learning a Domain-Invariant Embedding for
Unsupervised Person Re-identification" (IJCNN 2019), Sec. III, Fig. 1:
a ResNet50 trunk whose global average pooling and FC-1000 are replaced by
[global max pooling || global average pooling] -> FC 2048 -> BatchNorm ->
PReLU, the domain-invariant embedding (DIE); an identity classifier (IC: FC
and dropout) on the DIE; a domain classifier (DC) behind a gradient
reversal layer; and the recurrent top-down attention (RTDA), whose T loops
re-weight the feature maps from the previous loop's DIE and whose T+1 DIEs
are fused by learned weights initialised to 1/(T+1).

Outputs: ``embedding`` (the fused DIE, l2-normalised: the paper retrieves and
computes its triplet loss on normalised DIEs), ``logits`` (with
``num_classes``), ``domain`` (one logit per image, target = 1, with
``domain_classifier``).

Choices the paper leaves open, made here (the README's DIEN section repeats them):

- **Which feature map RTDA re-weights**: the trunk's last one, the map the
  DIE is pooled from. Each loop re-pools the re-weighted map through the DIE
  head; the trunk runs once. Re-running the upper trunk per loop would cost
  a stage-5 pass per loop (a third of ResNet50's work) for a reading of
  "feedback to the bottom layers" that the text does not pin down; the
  gradient still reaches the whole trunk through every loop's mask.
- **Whether the loops share weights**: yes, one
  :class:`~keras_reid.layers.TopDownAttention` and one FC 2048 serve every
  loop (a recurrence). Each loop has its own BatchNorm (``die_bn``,
  ``die_bn_1``, ...): a shared one would average the statistics of maps
  re-weighted 0..T times into moving statistics that fit none of them at
  inference.
- **Which DIE each loss sees**: the fused one, for every loss and for
  retrieval (the paper: "DIE features ... as retrieved vectors in testing").
- **The domain classifier** (not given): GRL -> FC 1024 -> ReLU -> dropout
  0.5 -> FC 1, the domain regressor of Ganin & Lempitsky's DANN (ICML 2015,
  whose gradient reversal the paper takes) with one hidden layer instead of
  two: the input is already a 2048-d embedding, not image features.
- **The IC's dropout**: 0.5 before the FC (the paper gives no rate).

Module names for the per-module learning rates of Sec. III-E (``optimizer.
lr_multipliers`` prefixes): ``trunk`` (backbone, 1e-4), ``die`` (the FC 2048
and its BN/PReLU, 1e-1), ``logits`` (IC, 1e-1), ``domain`` (DC, 1e-1), ``rtda``
(attention and fusion, 1e-2).
"""

import keras

from keras_reid.checks import is_int
from keras_reid.errors import ReIDError
from keras_reid.layers.classification import ClassificationHead
from keras_reid.layers.gradient_reversal import GradientReversal
from keras_reid.layers.rtda import LoopFusion, TopDownAttention
from keras_reid.models.backbones import build_backbone
from keras_reid.models.registry import check_num_classes, register_model


def check_attention_loops(loops):
    """``loops`` is None (no RTDA) or the paper's T, an int >= 1."""
    if loops is not None and not is_int(loops, minimum=1):
        raise ReIDError(
            "dien: attention_loops (the paper's T) must be an int >= 1, or null for no RTDA "
            f"(the Base rows). Received: attention_loops={loops!r}"
        )
    return loops


@register_model("dien")
def build_dien_model(
    backbone="resnet50",
    input_shape=(256, 128, 3),
    weights=None,
    embedding_dim=2048,
    num_classes=None,
    classifier_dropout=0.5,
    domain_classifier=False,
    reversal_scale=1.0,
    domain_units=1024,
    attention_loops=None,
    attention_filters=(256, 64),
    attention_reduction=16,
    bn_momentum=None,
    backbone_options=None,
):
    """Images -> {"embedding": the DIE, "logits" (IC), "domain" (DC)}: DIEN's network.

    Args:
        backbone: the trunk, "resnet50" (the paper's) or any registered one.
        input_shape: (height, width, 3). Default (256, 128, 3).
        weights: None, "imagenet" (Keras applications only) or a weight file path.
        embedding_dim: the DIE's size. Default 2048.
        num_classes: None (no IC) or the number of source identities: adds "logits".
        classifier_dropout: the IC's dropout rate. Default 0.5.
        domain_classifier: add the DC behind a gradient reversal layer: output
            "domain", one logit per image. Default False.
        reversal_scale: the reversal's initial factor (the paper's constant 1;
            ``train.reversal_ramp`` ramps it on Ganin's schedule instead).
        domain_units: the DC's hidden width. Default 1024.
        attention_loops: None (no RTDA: the Base..+CCCDTL+DC rows) or T >= 1.
        attention_filters, attention_reduction: the RTDA layer's
            (:class:`~keras_reid.layers.TopDownAttention`) widths.
        bn_momentum: the trunk's BatchNorm momentum (None: Keras' 0.99).
        backbone_options: more trunk options, e.g. ``{"alpha": 0.25}``.

    Example:
        >>> model = build_dien_model(num_classes=702, domain_classifier=True, attention_loops=3)
        >>> sorted(model.output_names)
        ['domain', 'embedding', 'logits']
    """
    check_num_classes(num_classes)
    loops = check_attention_loops(attention_loops)
    trunk = build_backbone(
        backbone, input_shape, weights, bn_momentum=bn_momentum, **(backbone_options or {})
    )
    images = keras.Input(shape=input_shape, name="images")
    maps = trunk(images)
    if len(maps.shape) != 4:
        raise ReIDError(f"dien: trunk {backbone!r} gives no feature map (shape {maps.shape}).")

    max_pool = keras.layers.GlobalMaxPooling2D(name="die_max_pool")
    average_pool = keras.layers.GlobalAveragePooling2D(name="die_average_pool")
    concat = keras.layers.Concatenate(name="die_pools")
    # float32 even under a mixed-precision policy, like the other heads.
    fc = keras.layers.Dense(embedding_dim, dtype="float32", name="die_fc")
    prelu = keras.layers.PReLU(dtype="float32", name="die_prelu")

    def die(feature_map, loop):
        pooled = concat([max_pool(feature_map), average_pool(feature_map)])
        norm = keras.layers.BatchNormalization(
            dtype="float32", name="die_bn" if loop == 0 else f"die_bn_{loop}"
        )
        return prelu(norm(fc(pooled)))

    embedding = die(maps, 0)
    if loops is not None:
        attend = TopDownAttention(
            list(attention_filters), attention_reduction, dtype="float32", name="rtda_attention"
        )
        dies = [embedding]
        for loop in range(1, loops + 1):
            dies.append(die(attend([maps, dies[-1]]), loop))
        embedding = LoopFusion(dtype="float32", name="rtda_fusion")(dies)

    outputs = {
        "embedding": keras.layers.UnitNormalization(dtype="float32", name="embedding")(embedding)
    }
    if num_classes is not None:
        outputs["logits"] = ClassificationHead(
            num_classes, dropout=classifier_dropout, dtype="float32", name="logits"
        )(embedding)
    if domain_classifier:
        x = GradientReversal(reversal_scale, dtype="float32", name="domain_reversal")(embedding)
        x = keras.layers.Dense(domain_units, activation="relu", dtype="float32", name="domain_fc")(
            x
        )
        x = keras.layers.Dropout(0.5, name="domain_dropout")(x)
        outputs["domain"] = keras.layers.Dense(1, dtype="float32", name="domain")(x)
    return keras.Model(images, outputs, name=f"{backbone}_dien")

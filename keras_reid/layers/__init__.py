"""Custom Keras layers, registered serializable under the package "keras_reid"."""

from keras_reid.layers.attention import AttentionMap, MultiLevelAttention
from keras_reid.layers.classification import ClassificationHead
from keras_reid.layers.gradient_reversal import GradientReversal
from keras_reid.layers.grouped import GroupedDense
from keras_reid.layers.preprocessing import TrunkPreprocessing
from keras_reid.layers.rtda import LoopFusion, TopDownAttention

__all__ = [
    "AttentionMap",
    "ClassificationHead",
    "GradientReversal",
    "GroupedDense",
    "LoopFusion",
    "MultiLevelAttention",
    "TopDownAttention",
    "TrunkPreprocessing",
]

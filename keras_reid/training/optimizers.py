"""The ``optimizer`` config section: Adam, SGD or AdamW, with per-module learning rates.

Keras 3 has one learning rate per optimizer. :class:`LayerwiseOptimizer` gives
each module its own, as the papers train: DIEN's backbone at 1e-4, its new
modules at 1e-1 and its attention at 1e-2; a pretrained trunk at a tenth of
the head's rate. It does what tensorflow-addons' (end-of-life)
``MultiOptimizer`` did: one inner optimizer per learning-rate factor, each
updating its own variables.

Which variables a prefix selects: every trainable variable has a *model
path*, the name of the model's top-level layer that holds it, then the
variable's path inside that layer. A top-level Dense ``embedding_fc1`` holds
``embedding_fc1/kernel``; the nested trunk model ``trunk`` holds
``trunk/conv1/kernel``, ``trunk/conv_pw_13_bn/gamma``, ... A prefix selects
the variables whose model path starts with it (plain string prefix):
``trunk`` is the whole trunk, ``trunk/conv_pw_13`` its last block,
``embedding`` the layers ``embedding_fc1``, ``embedding_bn`` and
``embedding``. The longest matching prefix wins; variables no prefix
matches keep factor 1.
"""

import math

import keras
from keras import ops

from keras_reid.checks import is_number
from keras_reid.errors import ReIDError
from keras_reid.registry import Registry

OPTIMIZERS = Registry("optimizer")
OPTIMIZERS.register("adam")(keras.optimizers.Adam)
OPTIMIZERS.register("sgd")(keras.optimizers.SGD)
OPTIMIZERS.register("adamw")(keras.optimizers.AdamW)

# Keras arguments that act on the whole step, not on one variable: one
# optimizer per group cannot honour them (global_clipnorm is applied once,
# over every gradient, by LayerwiseOptimizer itself).
_WHOLE_STEP_ARGUMENTS = ("gradient_accumulation_steps", "loss_scale_factor")


def variable_paths(model):
    """The model path of each of ``model.trainable_variables``, in that order.

    The path is the top-level layer's name, then the variable's path inside
    it: ``trunk/conv1/kernel`` for a variable of the nested model ``trunk``,
    ``embedding_fc1/kernel`` for a top-level Dense.

    Example:
        >>> variable_paths(build_embedding_model(alpha=0.25, input_shape=(64, 32, 3)))[:2]
        ['trunk/conv1/kernel', 'trunk/conv1_bn/gamma']
    """
    paths = {}
    for layer in model.layers:
        for variable in layer.trainable_variables:
            inner = variable.path
            path = inner if inner.startswith(layer.name + "/") else f"{layer.name}/{inner}"
            paths.setdefault(id(variable), path)
    return [paths.get(id(v), v.path) for v in model.trainable_variables]


def _check_multipliers(lr_multipliers):
    """``{prefix: factor}`` with string prefixes and finite factors >= 0."""
    if not isinstance(lr_multipliers, dict):
        raise ReIDError(
            "lr_multipliers must map layer-name prefixes to factors, e.g. {trunk: 0.1}. "
            f"Received: lr_multipliers={lr_multipliers!r}"
        )
    checked = {}
    for prefix, factor in lr_multipliers.items():
        if not isinstance(prefix, str) or not prefix:
            raise ReIDError(
                "lr_multipliers keys must be layer-name prefixes (non-empty strings). "
                f"Received: lr_multipliers={lr_multipliers!r}"
            )
        if not is_number(factor, minimum=0) or not math.isfinite(factor):
            raise ReIDError(
                f"lr_multipliers[{prefix!r}] must be a factor >= 0 (0 freezes the module, 1 "
                f"keeps the base rate). Received: lr_multipliers={lr_multipliers!r}"
            )
        checked[prefix] = float(factor)
    return checked


def _factor(path, lr_multipliers):
    """The factor of the longest prefix of ``path`` in ``lr_multipliers``; 1 when none."""
    matches = [prefix for prefix in lr_multipliers if path.startswith(prefix)]
    return lr_multipliers[max(matches, key=len)] if matches else 1.0


class _Group:
    """The variables sharing one factor and the inner optimizer that updates them.

    A plain object, not a list or an optimizer attribute of the outer one:
    Keras' saving would otherwise store the inner variables a second time
    (the outer optimizer already saves them, in :attr:`variables` order).
    """

    def __init__(self, factor, optimizer, indices):
        self.factor = factor
        self.optimizer = optimizer
        self.indices = indices


@keras.saving.register_keras_serializable(package="keras_reid")
class LayerwiseOptimizer(keras.optimizers.Optimizer):
    """One optimizer with a learning-rate factor per module (DIEN; SAL; fine-tuning a trunk).

    Partitions the model's trainable variables by the longest matching
    prefix of their model path (see the module docstring; factor 1 where no
    prefix matches) and keeps one inner copy of ``optimizer`` per distinct
    factor > 0, whose learning rate (or schedule value) is the base rate
    times the factor. Variables with factor 0 get no inner optimizer: no
    slot, no update, no weight decay; they stay bit-identical (BatchNorm's
    moving statistics are no optimizer's business: set ``trainable=False``
    on a layer to freeze those too, and to skip its gradients).

    For every optimizer here the update is linear in the learning rate, so
    factor ``f`` is exactly the plain optimizer at ``f`` times the rate: SGD
    moves ``f`` times as far, Adam (AdamW: its decoupled weight decay too, as
    in PyTorch's parameter groups) runs at ``f * lr``.

    The groups share this optimizer's single ``iterations`` (advanced once
    per step; schedules and Adam's bias correction read it). ``variables``
    are this optimizer's own (``iterations``, the base rate when it is a
    float) followed by each group's slots, in group order (first appearance
    in ``model.trainable_variables``): a fixed order that ``model.save`` and
    the run backup (:class:`keras_reid.training.state.RunState`) rely on.
    ``global_clipnorm`` clips over all gradients at once, as in the plain
    optimizer; ``clipnorm``/``clipvalue``/``weight_decay`` act per variable.

    Build it with :func:`build_optimizer`, which checks the prefixes
    against the model.

    Args:
        optimizer: a Keras optimizer (Adam, SGD, AdamW, ...) whose config (with
            its learning rate: a float or a LearningRateSchedule) every group copies.
        lr_multipliers: ``{prefix: factor}``, factors >= 0.
        variable_paths: the model path of each of ``model.trainable_variables``
            (:func:`variable_paths`); it fixes the groups without the model, so
            that a ``.keras`` file reloads with its groups.
        name: the optimizer's name (None: "layerwise_optimizer").

    Example:
        >>> optimizer = LayerwiseOptimizer(
        ...     keras.optimizers.SGD(0.01, momentum=0.9), {"trunk": 0.1}, variable_paths(model)
        ... )
        >>> model.compile(optimizer=optimizer, loss=...)
    """

    def __init__(self, optimizer, lr_multipliers, variable_paths, name=None):
        if not isinstance(optimizer, keras.optimizers.Optimizer) or isinstance(
            optimizer, LayerwiseOptimizer
        ):
            raise ReIDError(
                "LayerwiseOptimizer wraps a Keras optimizer (Adam, SGD, AdamW). "
                f"Received: optimizer={optimizer!r}"
            )
        for argument in _WHOLE_STEP_ARGUMENTS:
            if getattr(optimizer, argument, None):
                raise ReIDError(
                    f"{argument} is not supported together with lr_multipliers. "
                    f"Received: {argument}={getattr(optimizer, argument)!r}"
                )
        config = optimizer.get_config()
        learning_rate = config.pop("learning_rate")
        if isinstance(learning_rate, dict):
            learning_rate = keras.saving.deserialize_keras_object(learning_rate)
        global_clipnorm = config.pop("global_clipnorm", None)
        super().__init__(learning_rate=learning_rate, global_clipnorm=global_clipnorm, name=name)
        self.optimizer_config = keras.saving.serialize_keras_object(optimizer)
        self.lr_multipliers = _check_multipliers(lr_multipliers)
        self.variable_paths = [str(path) for path in variable_paths]

        factors = [_factor(path, self.lr_multipliers) for path in self.variable_paths]
        groups = {}
        for index, factor in enumerate(factors):
            if factor > 0:
                groups.setdefault(factor, []).append(index)
        self._groups = []
        for number, (factor, indices) in enumerate(groups.items()):
            inner = type(optimizer).from_config(
                {
                    **config,
                    "name": f"{self.name}_{number}",
                    "learning_rate": self._scaled_learning_rate(factor),
                }
            )
            # One step counter for all: the groups read this optimizer's.
            inner._untrack_variable(inner._iterations)
            object.__setattr__(inner, "_iterations", self._iterations)
            self._groups.append(_Group(factor, inner, indices))
        self._group_of = [None] * len(factors)
        for group in self._groups:
            for index in group.indices:
                self._group_of[index] = group

    def _scaled_learning_rate(self, factor):
        """The groups' learning rate: a callable reading this optimizer's rate (or schedule)."""
        if factor == 1.0:
            return lambda: self.learning_rate
        return lambda: ops.multiply(self.learning_rate, factor)

    @property
    def factors(self):
        """``{factor: number of variables}`` of the groups, zero included (frozen)."""
        counts = {}
        for path in self.variable_paths:
            factor = _factor(path, self.lr_multipliers)
            counts[factor] = counts.get(factor, 0) + 1
        return counts

    def build(self, var_list):
        var_list = list(var_list)
        if len(var_list) != len(self.variable_paths):
            raise ReIDError(
                f"this LayerwiseOptimizer was made for a model with {len(self.variable_paths)} "
                f"trainable variables, not {len(var_list)}; build it with build_optimizer(model, "
                "...) for the model it trains, after setting any layer.trainable."
            )
        for variable, path in zip(var_list, self.variable_paths, strict=True):
            if path != variable.path and not path.endswith("/" + variable.path):
                raise ReIDError(
                    f"this LayerwiseOptimizer was made for another model: its variable {path!r} "
                    f"is {variable.path!r} here; build it with build_optimizer(model, ...) for "
                    "the model it trains."
                )
        super().build(var_list)
        for group in self._groups:
            with keras.name_scope(group.optimizer.name):
                group.optimizer.build([var_list[index] for index in group.indices])

    @property
    def variables(self):
        return self._variables + [v for g in self._groups for v in g.optimizer.variables]

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "apply() without variables needs a built optimizer: call "
                    "optimizer.build(model.trainable_variables) first."
                )
            trainable_variables = self._trainable_variables
        else:
            trainable_variables = list(trainable_variables)
            if not self.built:
                with keras.name_scope(self.name):
                    self.build(trainable_variables)
            self._check_variables_are_known(trainable_variables)
        if len(grads) == 0:
            return
        with keras.name_scope(self.name):
            grads, trainable_variables = self._filter_empty_gradients(grads, trainable_variables)
            grads, trainable_variables = self._overwrite_variables_directly_with_gradients(
                grads, trainable_variables
            )
            if grads and self.global_clipnorm:
                grads = self._clip_gradients(grads)
            split = {id(group): ([], []) for group in self._groups}
            for grad, variable in zip(grads, trainable_variables, strict=True):
                group = self._group_of[self._get_variable_index(variable)]
                if group is not None:
                    split[id(group)][0].append(grad)
                    split[id(group)][1].append(variable)
            for group in self._groups:
                group_grads, group_variables = split[id(group)]
                if group_grads:
                    # Clipping, weight decay, the update (all-reduced under a
                    # tf.distribute strategy), EMA: the inner optimizer's own step.
                    group.optimizer._backend_apply_gradients(group_grads, group_variables)
                    for variable in group_variables:
                        if variable.constraint is not None:
                            variable.assign(variable.constraint(variable))
        self._iterations.assign_add(1)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Keras' exclusion from weight decay, passed on to every group (call before build)."""
        for group in self._groups:
            group.optimizer.exclude_from_weight_decay(var_list=var_list, var_names=var_names)

    def finalize_variable_values(self, var_list):
        var_list = list(var_list)
        for group in self._groups:
            group.optimizer.finalize_variable_values([var_list[i] for i in group.indices])

    def get_config(self):
        return {
            "name": self.name,
            "optimizer": self.optimizer_config,
            "lr_multipliers": self.lr_multipliers,
            "variable_paths": self.variable_paths,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["optimizer"] = keras.saving.deserialize_keras_object(
            config["optimizer"], custom_objects=custom_objects
        )
        return cls(**config)


def _nested_hint(model):
    """How a layer inside the first nested model is named, e.g. "'trunk/conv1'"."""
    for layer in model.layers:
        for inner in getattr(layer, "layers", ()):
            if inner.trainable_variables:
                return f"'{layer.name}/{inner.name}'"
    return "'<model>/<layer>'"


def build_optimizer(model, learning_rate, name="adam", lr_multipliers=None, **kwargs):
    """The ``optimizer`` config section: a Keras optimizer, with per-module rates if asked.

    Args:
        model: the model it will train (its layers resolve ``lr_multipliers``).
        learning_rate: a float >= 0 or a LearningRateSchedule (:func:`build_schedule`).
        name: ``adam`` (default), ``sgd`` or ``adamw`` (see :data:`OPTIMIZERS`).
        lr_multipliers: ``{layer-name prefix: factor}`` (see the module
            docstring for how prefixes match); None or empty (default): one
            rate for all, and the plain Keras optimizer is returned.
        **kwargs: the Keras optimizer's own arguments: ``momentum``, ``nesterov``
            (sgd); ``beta_1``, ``beta_2``, ``epsilon``, ``amsgrad`` (adam, adamw);
            ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ...

    Returns:
        ``keras.optimizers.Adam``/``SGD``/``AdamW``, or a :class:`LayerwiseOptimizer`
        wrapping one when ``lr_multipliers`` is given.

    Example:
        >>> optimizer = build_optimizer(
        ...     model, 0.01, "sgd", momentum=0.9, lr_multipliers={"trunk": 0.1}
        ... )
        >>> model.compile(optimizer=optimizer, loss={"embedding": BatchHardTripletLoss()})
    """
    optimizer_class = OPTIMIZERS.check(
        name, kwargs, exclude=("learning_rate", "name"), extra=("lr_multipliers",)
    )
    if is_number(learning_rate, minimum=0) and math.isfinite(learning_rate):
        learning_rate = float(learning_rate)
    elif not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        raise ReIDError(
            "learning_rate must be a number >= 0 or a LearningRateSchedule. "
            f"Received: learning_rate={learning_rate!r}"
        )
    try:
        optimizer = optimizer_class(learning_rate=learning_rate, **kwargs)
    except (TypeError, ValueError) as error:
        message = " ".join(str(error).split())
        raise ReIDError(f"optimizer {name!r}: {message}") from None
    if not lr_multipliers:
        return optimizer
    multipliers = _check_multipliers(lr_multipliers)
    paths = variable_paths(model)
    for prefix in multipliers:
        if not any(path.startswith(prefix) for path in paths):
            layers = ", ".join(layer.name for layer in model.layers if layer.trainable_weights)
            raise ReIDError(
                f"lr_multipliers prefix {prefix!r} matches no trainable layer of model "
                f"{model.name!r}, whose top-level layers with weights are: {layers} (a layer "
                f"inside a nested model is named '<model>/<layer>', e.g. {_nested_hint(model)}). "
                f"Received: lr_multipliers={lr_multipliers!r}"
            )
    return LayerwiseOptimizer(optimizer, multipliers, paths)

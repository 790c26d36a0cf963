"""YAML experiment configs that map one to one onto the functions they call.

A config is a mapping of sections; each section holds the keyword arguments of
one library function, so an unknown key is an error, not a silent no-op. A
config may inherit another with ``base: other.yaml`` (a path relative to the
file) and override only what differs.

Example (``train_scripts/configs/msml_synth_msml.yaml``)::

    base: msml_synth_base.yaml
    losses:
      logits: {name: softmax}
      embedding: {name: msml, margin: 0.3}

``keras-reid train embedding --config FILE model.alpha=0.5 train.epochs=10``
applies ``section.key=value`` overrides on top (values parsed as YAML).
"""

import copy
import inspect
import json
import os
import re
import types
import typing

import yaml

from keras_reid.errors import ReIDError
from keras_reid.fileio import (
    check_folder_path,
    make_folder,
    read_text,
    remove_stale_temporaries,
    write_text,
)
from keras_reid.registry import accepted_keys


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; learning rates are written that way."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _parse(text):
    return yaml.load(text, Loader=_Loader)


def merge_config(base, update):
    """``base`` with ``update`` merged in: mappings key by key, anything else replaced."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(path, overrides=(), _seen=None):
    """Read a YAML config, resolve ``base:`` inheritance, apply ``a.b=value`` overrides."""
    path = os.path.abspath(path)
    seen = _seen or []
    if path in seen:
        raise ReIDError(f"config: {path} inherits itself through base: {' -> '.join(seen)}.")
    if not os.path.isfile(path):
        raise ReIDError(f"config: no file {path}; pass the path of a YAML config.")
    text = read_text(path, "config:")
    try:
        config = _parse(text) or {}
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())
        raise ReIDError(f"config: {path} is not valid YAML: {reason}") from None
    if not isinstance(config, dict):
        raise ReIDError(
            f"config: {path} must be a mapping of sections, not {type(config).__name__}."
        )
    base = config.pop("base", None)
    if base is not None and not isinstance(base, str):
        raise ReIDError(
            f"config: {path}: base must be the path of one config (base: other.yaml), not {base!r}."
        )
    if base is not None:
        parent = load_config(os.path.join(os.path.dirname(path), base), (), seen + [path])
        config = merge_config(parent, config)
    for override in overrides:
        config = apply_override(config, override)
    return config


def apply_override(config, override):
    """``"model.alpha=0.5"`` -> config with ``config["model"]["alpha"] = 0.5``."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ReIDError(f"config override {override!r} is not of the form section.key=value.")
    try:
        value = _parse(text)
    except yaml.YAMLError:
        value = text
    config = copy.deepcopy(config)
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ReIDError(f"config override {override!r}: {part!r} is not a section.")
    node[leaf] = value
    return config


def check_sections(config, sections, where="config"):
    """Refuse sections that nothing reads: ``sections`` are the valid names."""
    unknown = sorted(set(config) - set(sections))
    if unknown:
        raise ReIDError(
            f"{where}: unknown section(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(sections))}."
        )


def section_options(config, section):
    """The mapping ``config[section]`` (empty when absent); anything else is an error."""
    options = config.get(section)
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ReIDError(
            f"config: section {section} must be a mapping of keys (such as {section}: "
            f"{{key: value}}), not {options!r}."
        )
    return dict(options)


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _allowed_types(annotation):
    """The value types an annotation such as ``int``, ``float`` or ``int | None`` allows."""
    members = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
    allowed = set(members or (annotation,))
    if not allowed <= {int, float, bool, str, type(None)}:
        return None  # not a plain scalar annotation: the function checks its own values
    if float in allowed:
        allowed.add(int)  # 3 is a fine learning rate
    return allowed


def check_types(fn, options, section):
    """Refuse values whose type differs from ``fn``'s scalar annotations (``int``, ``str | None``).

    YAML gives ``abc`` and ``1.5`` as a string and a float: for ``epochs: int``
    both are errors naming the key, not a traceback later on.
    """
    parameters = inspect.signature(fn).parameters
    for key, value in options.items():
        annotation = parameters[key].annotation if key in parameters else inspect.Parameter.empty
        allowed = None if annotation is inspect.Parameter.empty else _allowed_types(annotation)
        if allowed is None:
            continue
        kind = bool if isinstance(value, bool) else type(value)
        if kind not in allowed:
            names = [_TYPE_NAMES[t] for t in (int, float, bool, str) if t in allowed]
            if int in allowed and float in allowed:
                names.remove("an integer")
            if type(None) in allowed:
                names.append("null")
            raise ReIDError(
                f"config: {section}.{key} must be {' or '.join(names)}. Received: "
                f"{section}.{key}={value!r}"
            )


def call_section(fn, config, section, exclude=(), **fixed):
    """Call ``fn(**config[section], **fixed)``, refusing keys that ``fn`` does not take.

    Values are checked against ``fn``'s scalar annotations (:func:`check_types`);
    a ``TypeError`` or ``ValueError`` that ``fn`` raises about a value becomes
    a one-line ReIDError naming the section.

    Args:
        fn: the library function the section configures.
        config: the whole config mapping.
        section: the section's name, for messages ("model").
        exclude: parameters of ``fn`` that the config may not set (they are in ``fixed``).
        **fixed: arguments the caller supplies itself.
    """
    options = section_options(config, section)
    valid = accepted_keys(fn, exclude=tuple(exclude) + tuple(fixed))
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ReIDError(
            f"config: unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
            f"valid keys of {section}: {', '.join(valid)}."
        )
    check_types(fn, options, section)
    try:
        return fn(**options, **fixed)
    except ReIDError:
        raise
    except (TypeError, ValueError) as error:
        given = ", ".join(f"{section}.{k}={v!r}" for k, v in options.items()) or "no keys"
        raise ReIDError(
            f"config: section {section} ({given}) was refused: {error}. Check these values."
        ) from error


def _comparable(config):
    """``config`` as sorted JSON without its ``verbose`` keys (they change no result)."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "verbose"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(config), sort_keys=True)


def check_run_dir(path, config, resume=False):
    """Refuse a run folder that may not be used, touching nothing.

    A non-empty folder is refused unless ``resume``, so that a run never
    overwrites another. On resume, the recorded config must equal ``config``
    (``verbose`` keys aside: progress output changes no result).
    """
    path = os.path.abspath(path)
    recorded = os.path.join(path, "config.yaml")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ReIDError(f"run folder {path} exists and is not a folder; choose another --out.")
    check_folder_path(path)
    if not (os.path.isdir(path) and _has_content(path)):
        return path
    if not resume:
        raise ReIDError(
            f"run folder {path} is not empty; pass --resume to continue that run "
            "or choose another --out."
        )
    if os.path.isfile(recorded):
        try:
            with open(recorded, encoding="utf-8") as stream:
                previous = _parse(stream)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise ReIDError(
                f"--resume: cannot read the recorded config {recorded} ({error}); "
                "start a new run folder."
            ) from None
        if _comparable(previous) != _comparable(config):
            raise ReIDError(
                f"--resume: the config differs from the one recorded in {recorded}; "
                "resume with the same config or start a new run folder."
            )
    return path


def _has_content(path):
    """True when ``path`` holds anything but hidden temporaries of killed writers."""
    remove_stale_temporaries(path, recursive=False)
    return bool(os.listdir(path))


def prepare_run_dir(path, config, resume=False):
    """Check the run folder (:func:`check_run_dir`), create it and record ``config.yaml``."""
    path = check_run_dir(path, config, resume=resume)
    recorded = os.path.join(path, "config.yaml")
    if resume and os.path.isfile(recorded):
        return path
    make_folder(path)
    write_text(recorded, yaml.safe_dump(config, sort_keys=False))
    return path

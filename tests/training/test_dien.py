"""DIEN on the shared path: `keras-reid train dien`, the reversal ramp, and bad input."""

import keras
import numpy as np
import pytest
import yaml
from console import run
from helpers import outputs_in_a_fresh_process

from keras_reid.data import load_dataset
from keras_reid.errors import ReIDError
from keras_reid.training.callbacks import ganin_ramp
from keras_reid.training.recipe import check_config, check_reversal, train


def dien_config(roots, **changes):
    """DIEN's full model at a CPU size: small_convnet at 64x32, synth-a -> synth-b."""
    tiny = {"ids": 12, "size": [64, 32]}
    config = {
        "data": {
            "train": [{"name": "synth-a", "root": roots["synth-a"], **tiny}],
            "target": {"name": "synth-b", "root": roots["synth-b"], **tiny},
        },
        "model": {
            "name": "dien",
            "backbone": "small_convnet",
            "input_shape": [64, 32, 3],
            "embedding_dim": 16,
            "domain_classifier": True,
            "attention_loops": 2,
            "attention_filters": [8, 4],
        },
        "batches": {"kind": "cross_domain", "p": 4, "k": 2, "target_size": 4},
        "losses": {
            "logits": {"name": "softmax"},
            "embedding": {"name": "cross_domain", "margin": 0.3, "lam": 1.0},
            "domain": {"name": "domain", "weight": 0.1},
        },
        "optimizer": {
            "name": "sgd",
            "momentum": 0.9,
            "lr_multipliers": {"trunk": 0.001, "rtda": 0.1},
        },
        "schedule": {"name": "step", "base_lr": 0.1, "step_epochs": 10},
        "train": {
            "epochs": 2,
            "seed": 3,
            "verbose": 0,
            "reversal_ramp": {"max_scale": 0.8, "gamma": 10},
        },
    }
    for section, values in changes.items():
        config[section] = {**config[section], **values}
    return config


def test_keras_reid_train_dien_runs_and_its_model_loads_anywhere(tiny_synth, tmp_path):
    config = tmp_path / "dien.yaml"
    config.write_text(yaml.safe_dump(dien_config(tiny_synth)))
    out = tmp_path / "run"
    code, _, err = run(["train", "dien", "--config", config, "--out", out])
    assert code == 0, err
    # The target's person ids are not used, and the run says so.
    assert "synth-b: the person ids of its" in err and "are ignored" in err
    log = (out / "log.csv").read_text().splitlines()
    assert len(log) == 3 and all(f"{o}_loss" in log[0] for o in ("logits", "embedding", "domain"))
    # Whether the domains are still told apart is a logged figure, not a guess.
    last = dict(zip(log[0].split(","), log[-1].split(","), strict=True))
    assert 0.0 <= float(last["domain_accuracy"]) <= 1.0
    outputs = outputs_in_a_fresh_process(out / "model.keras", (64, 32, 3))
    classes = load_dataset("synth-a", tiny_synth["synth-a"], ids=12, size=(64, 32))
    assert {name: shape for name, (shape, _) in outputs.items()} == {
        "domain": (1,),
        "embedding": (16,),
        "logits": (classes.train["pid"].nunique(),),
    }
    assert outputs["embedding"][1] == pytest.approx(1.0, abs=1e-5)  # the DIE, l2-normalised
    # The ramp set the reversal before the last step from the optimizer's step count.
    model = keras.models.load_model(out / "model.keras")
    steps = 2 * (len(classes.train) // (4 * 2))
    expected = 0.8 * ganin_ramp((steps - 1) / steps, 10)
    assert float(model.get_layer("domain_reversal").factor) == pytest.approx(expected, rel=1e-6)


def test_a_cross_domain_run_without_a_target_is_one_line_and_writes_nothing(tiny_synth, tmp_path):
    config = dien_config(tiny_synth)
    del config["data"]["target"]
    path = tmp_path / "dien.yaml"
    path.write_text(yaml.safe_dump(config))
    code, _, err = run(["train", "dien", "--config", path, "--out", tmp_path / "run"])
    assert code == 2
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "cross_domain needs an unlabelled target domain" in lines[0]
    assert "data.target" in lines[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"batches": {"kind": "pk"}}, "data.target synth-b would be unused with batches.kind pk"),
        ({"model": {"attention_loops": 0}}, "attention_loops (the paper's T) must be an int >= 1"),
        ({"batches": {"target_size": 0}}, "target_size must be a positive integer"),
    ],
)
def test_bad_dien_sections_are_one_line_errors(tiny_synth, changes, message):
    with pytest.raises(ReIDError) as error:
        check_config(dien_config(tiny_synth, **changes))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_target_that_is_also_the_source_is_refused(tiny_synth, tmp_path):
    config = dien_config(tiny_synth)
    config["data"]["target"] = config["data"]["train"][0]
    with pytest.raises(ReIDError, match="is also a source"):
        train(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_a_domain_loss_on_a_model_without_gradient_reversal_is_refused():
    from keras_reid.losses import DomainCrossEntropy

    x = keras.Input((4,))
    model = keras.Model(x, {"domain": keras.layers.Dense(1, name="domain")(x)}, name="plain")
    with pytest.raises(ReIDError, match="model 'plain' has no GradientReversal layer"):
        check_reversal(model, {"domain": DomainCrossEntropy()})


def test_the_dien_model_trains_its_modules_at_their_own_rates(tiny_synth):
    # Sec. III-E: backbone 1e-4, IC / DIE FC / DC 1e-1, RTDA 1e-2, from lr_multipliers.
    from keras_reid.models import build_model
    from keras_reid.training.optimizers import build_optimizer, variable_paths

    config = dien_config(tiny_synth)
    model = build_model(**{**config["model"], "num_classes": 6})
    optimizer = build_optimizer(
        model, 0.1, "sgd", lr_multipliers=config["optimizer"]["lr_multipliers"]
    )
    rates = {}
    for group in optimizer._groups:
        for index in group.indices:
            rates[variable_paths(model)[index]] = 0.1 * group.factor
    assert rates["trunk/block1_conv/kernel"] == pytest.approx(1e-4)
    assert rates["rtda_attention/spatial_deconv1/kernel"] == pytest.approx(1e-2)
    assert rates["rtda_fusion/kernel"] == pytest.approx(1e-2)
    for path in ("die_fc/kernel", "die_bn_2/gamma", "logits/logits/kernel", "domain_fc/kernel"):
        assert rates[path] == pytest.approx(0.1)
    assert np.isclose(sorted(set(rates.values())), [1e-4, 1e-2, 0.1]).all()

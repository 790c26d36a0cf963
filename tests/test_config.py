import pytest
import yaml

from keras_reid.config import call_section, check_sections, load_config, prepare_run_dir
from keras_reid.errors import ReIDError


def build(backbone="mobilenet", alpha=1.0, input_shape=(256, 128, 3)):
    return {"backbone": backbone, "alpha": alpha, "input_shape": tuple(input_shape)}


def write(path, mapping):
    path.write_text(yaml.safe_dump(mapping))
    return path


def test_base_inheritance_and_overrides(tmp_path):
    write(tmp_path / "base.yaml", {"model": {"alpha": 1.0, "backbone": "mobilenet"}, "x": {"a": 1}})
    child = write(tmp_path / "child.yaml", {"base": "base.yaml", "model": {"alpha": 0.25}})
    config = load_config(child, overrides=["model.input_shape=[64, 32, 3]", "x.a=2"])
    assert config == {
        "model": {"alpha": 0.25, "backbone": "mobilenet", "input_shape": [64, 32, 3]},
        "x": {"a": 2},
    }


def test_call_section_maps_keys_to_arguments():
    config = {"model": {"alpha": 0.5, "input_shape": [64, 32, 3]}}
    assert call_section(build, config, "model") == {
        "backbone": "mobilenet",
        "alpha": 0.5,
        "input_shape": (64, 32, 3),
    }


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(ReIDError, match=r"unknown key\(s\) model.alhpa; valid keys of model: "):
        call_section(build, {"model": {"alhpa": 0.5}}, "model")


def test_fixed_arguments_cannot_come_from_the_config():
    with pytest.raises(ReIDError, match="model.backbone"):
        call_section(build, {"model": {"backbone": "resnet50"}}, "model", backbone="mobilenet")


def test_unknown_section_and_bad_files(tmp_path):
    with pytest.raises(ReIDError, match="unknown section.*modle"):
        check_sections({"modle": {}}, ["model", "train"])
    with pytest.raises(ReIDError, match="no file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(ReIDError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    write(tmp_path / "loop.yaml", {"base": "loop.yaml"})
    with pytest.raises(ReIDError, match="inherits itself"):
        load_config(tmp_path / "loop.yaml")
    with pytest.raises(ReIDError, match="section.key=value"):
        load_config(write(tmp_path / "ok.yaml", {}), overrides=["novalue"])


def test_run_dir_records_config_and_refuses_overwrite(tmp_path):
    run = tmp_path / "run"
    prepare_run_dir(run, {"model": {"alpha": 0.25}})
    assert yaml.safe_load((run / "config.yaml").read_text()) == {"model": {"alpha": 0.25}}
    with pytest.raises(ReIDError, match="not empty; pass --resume"):
        prepare_run_dir(run, {"model": {"alpha": 0.25}})
    assert prepare_run_dir(run, {"model": {"alpha": 0.25}}, resume=True) == str(run)
    with pytest.raises(ReIDError, match="config differs"):
        prepare_run_dir(run, {"model": {"alpha": 0.5}}, resume=True)


def test_resume_ignores_only_progress_output(tmp_path):
    run = tmp_path / "run"
    prepare_run_dir(run, {"model": {"alpha": 0.25}, "train": {"verbose": 1, "seed": 0}})
    same = {"model": {"alpha": 0.25}, "train": {"verbose": 2, "seed": 0}}
    assert prepare_run_dir(run, same, resume=True) == str(run)
    with pytest.raises(ReIDError, match="config differs"):
        prepare_run_dir(run, {"model": {"alpha": 0.25}, "train": {"verbose": 1, "seed": 1}}, True)


def test_scientific_floats_without_a_dot_are_numbers(tmp_path):
    path = write(tmp_path / "lr.yaml", {})
    path.write_text("schedule:\n  base_lr: 1e-4\n  final_lr: 3.0e-7\n  name: 1e5x\n")
    config = load_config(path, overrides=["schedule.step=2E3"])
    assert config["schedule"] == {"base_lr": 1e-4, "final_lr": 3e-7, "name": "1e5x", "step": 2000.0}


def test_configs_in_other_encodings_and_odd_shapes_are_one_line_errors(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("model:\n  name: caf\xe9\n".encode("latin-1"))
    expected = r"config: .*latin.yaml is not UTF-8 text \(line 2, byte 0xe9\); save it as UTF-8"
    with pytest.raises(ReIDError, match=expected):
        load_config(latin)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfmodel:\n  alpha: 0.5\n")
    assert load_config(bom) == {"model": {"alpha": 0.5}}
    listed = write(tmp_path / "listed.yaml", {"base": ["a.yaml", "b.yaml"]})
    with pytest.raises(ReIDError, match=r"base must be the path of one config"):
        load_config(listed)
    with pytest.raises(ReIDError, match="section model must be a mapping of keys"):
        call_section(build, {"model": 5}, "model")


def test_values_are_checked_against_the_option_types():
    from keras_reid.training.runner import TrainOptions

    for value, expected in [("abc", "an integer"), (1.5, "an integer"), (True, "an integer")]:
        with pytest.raises(ReIDError, match=f"train.epochs must be {expected}. Received"):
            call_section(TrainOptions, {"train": {"epochs": value}}, "train")
    with pytest.raises(ReIDError, match="train.backup_steps must be an integer or null"):
        call_section(TrainOptions, {"train": {"backup_steps": "often"}}, "train")
    assert call_section(TrainOptions, {"train": {"backup_steps": None}}, "train").epochs == 400

    def schedule(base_lr: float = 1e-4, name: str = "step"):
        return base_lr, name

    assert call_section(schedule, {"s": {"base_lr": 3}}, "s") == (3, "step")  # an int is a number
    with pytest.raises(ReIDError, match=r"s.base_lr must be a number. Received: s.base_lr='x'"):
        call_section(schedule, {"s": {"base_lr": "x"}}, "s")

    def refuses(size=1):
        raise ValueError(f"size must be even. Received: size={size}")

    with pytest.raises(ReIDError, match=r"section m \(m.size=3\) was refused: size must be even"):
        call_section(refuses, {"m": {"size": 3}}, "m")

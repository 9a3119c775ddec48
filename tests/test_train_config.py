"""TrainConfig: YAML/CLI merging, type checks, the shipped configs, model-name resolution."""

import pytest

from hamixer.errors import ConfigError
from hamixer.train.cli_args import resolve_model_name
from hamixer.train.config import CONFIG_DIR, TrainConfig, load_yaml, merge, parse_kv


def test_parse_kv_types():
    kv = parse_kv(["asym_lambda=1e-3", "n_iter=2", "mlp_ratio=[0.5, 4]", "norm=joint",
                   "mlp_bias=true"])
    assert kv == {"asym_lambda": 1e-3, "n_iter": 2, "mlp_ratio": [0.5, 4], "norm": "joint",
                  "mlp_bias": True}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_kv(["oops"])


def test_merge_checks_names_and_types():
    cfg = merge(TrainConfig(), {"weight-decay": 0, "model_kwargs": {"n_iter": 2}}, "x")
    assert cfg.weight_decay == 0.0 and isinstance(cfg.weight_decay, float)
    cfg = merge(cfg, {"model_kwargs": {"asym_lambda": 0.1}}, "x")
    assert cfg.model_kwargs == {"n_iter": 2, "asym_lambda": 0.1}  # merged, not replaced
    with pytest.raises(ConfigError, match="did you mean: epochs"):
        merge(cfg, {"epoch": 3}, "x")
    with pytest.raises(ConfigError, match="epochs must be an integer"):
        merge(cfg, {"epochs": 2.5}, "x")
    with pytest.raises(ConfigError, match="amp must be true or false"):
        merge(cfg, {"amp": "yes"}, "x")


def test_linear_lr_scaling():
    assert TrainConfig(base_lr=5e-4, batch_size=1024).resolved_lr == pytest.approx(1e-3)
    assert TrainConfig(lr=0.1, batch_size=1024).resolved_lr == 0.1


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_are_valid(path):
    cfg = merge(TrainConfig(), load_yaml(path), path.name).validate()
    from hamixer.models.registry import model_args

    model_args(cfg.model)


def test_family_names_get_the_dataset_size():
    assert resolve_model_name("symmixer", "digits") == "symmixer_n2_8"
    assert resolve_model_name("paramixer", "fashion-mnist") == "paramixer_t4_28"
    assert resolve_model_name("vanillamixer", "cifar10") == "vanillamixer_t4_32"
    assert resolve_model_name("paramixer_s16_224", "cifar10") == "paramixer_s16_224"


def test_bad_yaml_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml(bad)
    with pytest.raises(ConfigError, match="shipped configs: .*digits"):
        load_yaml("nosuchconfig")

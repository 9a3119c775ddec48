"""TrainConfig: YAML/CLI merging, type checks, the shipped configs, model-name resolution."""

import pytest

from hamixer.cli.flags import resolve_model_name
from hamixer.errors import ConfigError
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


@pytest.mark.parametrize("name", ["vanillamixer_t4_28", "paramixer_t4_28", "mlpmixer_t4_28"])
def test_norm_weight_decay_moves_only_the_norm_gains(name):
    """norm_weight_decay=false exempts every norm gain (the joint norm's are 2-D, so timm's
    1-D rule misses them) and changes nothing else; true is timm's default grouping."""
    from timm.optim import create_optimizer_v2

    from hamixer.models import create_model
    from hamixer.train.setup import make_optimizer_and_scheduler

    model = create_model(name)
    names = {id(p): n for n, p in model.named_parameters()}

    def decayed(opt):
        return {names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0
                for p in g["params"]}

    timm_default = decayed(create_optimizer_v2(model, opt="adamw", lr=1e-3, weight_decay=0.05))
    cfg = TrainConfig(model=name, dataset="fashion-mnist")
    assert decayed(make_optimizer_and_scheduler(cfg, model, 10)[0]) == timm_default
    cfg = merge(cfg, {"norm_weight_decay": False}, "x")
    without_norms = decayed(make_optimizer_and_scheduler(cfg, model, 10)[0])
    exempt = timm_default - without_norms
    gains = {n for n, p in model.named_parameters() if "norm" in n and n.endswith(".weight")}
    assert exempt == {n for n in gains if model.get_parameter(n).ndim >= 2}
    assert without_norms <= timm_default
    if name.startswith("vanilla"):
        assert len(exempt) == 2 * 4 + 1  # two norms per serial block and the final norm
    elif name.startswith("mlpmixer"):
        assert not exempt  # per-token norms have 1-D gains, which timm already exempts


@pytest.mark.parametrize("name", ["vanillamixer_t4_28", "asymmixer_t4_28", "mlpmixer_t4_28"])
def test_muon_orthogonalises_only_the_mixing_matrices(name):
    """With a hybrid optimizer the MLP matrices (tied and breaking ones included) get Muon;
    the stem, the head and every norm parameter (the joint norm's are 2-D) its AdamW."""
    from hamixer.models import create_model
    from hamixer.train.setup import make_optimizer_and_scheduler

    model = create_model(name)
    names = {id(p): n for n, p in model.named_parameters()}
    cfg = TrainConfig(model=name, dataset="fashion-mnist", opt="muon", norm_weight_decay=False)
    opt = make_optimizer_and_scheduler(cfg, model, 10)[0]
    muon = {names[id(p)] for g in opt.param_groups if not g.get("use_fallback")
            for p in g["params"]}
    matrices = {n for n, p in model.named_parameters()
                if n.startswith("blocks.") and "mlp" in n and p.ndim == 2}
    assert muon == matrices and len(matrices) == 4 * 4  # 4 blocks × 2 MLPs × 2 matrices
    fallback = set(names.values()) - muon
    assert {"stem.proj.weight", "head.weight", "norm.weight"} <= fallback
    decayed = {names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0
               for p in g["params"]}
    assert matrices <= decayed and "norm.weight" not in decayed
    assert "stem.proj.weight" in decayed and "head.bias" not in decayed


def test_muon_orthogonalises_in_float32_on_cpu(monkeypatch):
    """On CPU each Muon step runs timm's Newton–Schulz in float32 and leaves the module as it
    found it; AdamW is not hooked."""
    import timm.optim.muon as timm_muon
    import torch

    from hamixer.models import create_model
    from hamixer.train.setup import make_optimizer_and_scheduler

    dtypes = []
    original = timm_muon.zeropower_via_newtonschulz

    def spy(*args, **kwargs):
        dtypes.append(kwargs.get("dtype"))
        return original(*args, **kwargs)

    monkeypatch.setattr(timm_muon, "zeropower_via_newtonschulz", spy)
    for opt_name, hooked in (("muon", True), ("adamw", False)):
        model = create_model("vanillamixer_n2_8", num_blocks=1, embed_dim=16)
        cfg = TrainConfig(model="vanillamixer_n2_8", opt=opt_name)
        opt = make_optimizer_and_scheduler(cfg, model, 10)[0]
        model(torch.randn(4, 1, 8, 8)).square().mean().backward()
        opt.step()
        assert ("step" in vars(opt)) == hooked  # Muon's own step is wrapped, AdamW's not
    assert dtypes == [torch.float32] * 4  # one call per mixing matrix (2 MLPs × 2)
    assert timm_muon.zeropower_via_newtonschulz is spy

    # a step that raises still puts timm's function back
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(timm_muon, "zeropower_via_newtonschulz", broken)
    model = create_model("vanillamixer_n2_8", num_blocks=1, embed_dim=16)
    opt = make_optimizer_and_scheduler(TrainConfig(model="vanillamixer_n2_8", opt="muon"),
                                       model, 10)[0]
    model(torch.randn(4, 1, 8, 8)).square().mean().backward()
    with pytest.raises(RuntimeError, match="boom"):
        opt.step()
    assert timm_muon.zeropower_via_newtonschulz is broken


def test_augmentation_settings_are_defined_once_and_reach_the_pipeline():
    """The pipeline's AugmentSpec is the one definition of the augmentation settings: each
    of its fields is a flat TrainConfig setting of the same type, and ``cfg.augment`` is
    built from those settings, whatever they are set to."""
    import dataclasses
    import typing

    from hamixer.data.pipeline import AugmentSpec

    spec_hints = typing.get_type_hints(AugmentSpec)
    cfg_hints = typing.get_type_hints(TrainConfig)
    assert {n: cfg_hints[n] for n in spec_hints} == spec_hints
    changed = {"crop_padding": 2, "hflip": 0.5, "randaugment_n": 2, "randaugment_m": 7,
               "randaugment_mstd": 0.25, "reprob": 0.3, "mixup": 0.8, "cutmix": 1.0,
               "mixup_prob": 0.6, "mixup_switch_prob": 0.4, "label_smoothing": 0.2}
    assert set(changed) == set(spec_hints)  # every setting, each off its default
    cfg = merge(TrainConfig(), changed, "x").validate()
    assert dataclasses.asdict(cfg.augment) == changed
    assert dataclasses.asdict(TrainConfig().augment) == {
        n: getattr(TrainConfig(), n) for n in spec_hints}


def test_every_committed_run_config_loads_and_would_resume(tmp_path):
    """Each results/*/config.yaml (flat keys, as every run has written them) is a valid
    configuration today, with the same augmentation, and passes the resume check against
    itself: the folders it came from can still be continued."""
    from pathlib import Path

    import yaml

    from hamixer.train.run import check_same_config

    paths = sorted((Path(__file__).resolve().parents[2] / "results").rglob("config.yaml"))
    assert paths
    for path in paths:
        saved = yaml.safe_load(path.read_text())
        cfg = merge(TrainConfig(), saved, str(path)).validate()
        aug = cfg.augment
        assert all(getattr(aug, n) == saved[n] for n in vars(aug) if n in saved), path
        assert {k: v for k, v in cfg.to_dict().items() if k in saved} == saved, path
        check_same_config(saved, cfg, tmp_path)
        check_same_config(cfg.to_dict(), TrainConfig(**cfg.to_dict()), tmp_path)

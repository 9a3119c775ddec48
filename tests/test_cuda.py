"""CUDA checks, run with ``pytest -m cuda`` (``benchmarks/gpu_check.sh`` runs them) and skipped
where no CUDA device is available:

* every family's forward and backward on CUDA equal the CPU's (float32, TF32 off);
* float16 (with a GradScaler) and bfloat16 autocast: finite, and close to float32 for single
  forwards and for whole training runs through the engine;
* the energy identity of a parallel block in float64 on CUDA (as ``test_energy_mixer``);
* a checkpoint written on CUDA loads, evaluates and resumes on the CPU;
* ``--compile`` trains on CUDA with inductor and saves the plain module's keys;
* a run turns TF32 on while it trains (``--tf32``, the default) and restores the setting;
* the benchmark's CUDA-graph training step (the whole step recorded and replayed) updates the
  weights as the eager step does.
"""

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from hamixer.cli import main
from hamixer.models import create_model
from hamixer.models.registry import FAMILIES
from hamixer.train import TrainConfig, load_model, run_training
from hamixer.train.checkpoint import load_checkpoint
from models.test_energy import CONFIGS, check_energy_identity, make_block

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA device (on a GPU machine: pytest -m cuda)"),
]
CUDA = torch.device("cuda")
# Every family at the 8 px size with 2 blocks: small enough that a mismatch is a bug, not noise.
SMALL = dict(num_blocks=2)
# A training run of a few seconds on the built-in digits, in float32 on CUDA too (a run turns
# TF32 on by default, as timm's train.py; the comparisons here are with float32 on the CPU).
RUN = dict(model="paramixer_n2_8", dataset="digits", epochs=2, batch_size=32, limit_train=256,
           limit_test=128, quiet=True, seed=0, model_kwargs=dict(num_blocks=2), tf32=False)


@pytest.fixture(autouse=True)
def _no_tf32():
    """float32 parity needs float32 products: TF32 off (cuDNN convolutions allow it by default)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ in float64 on the CPU (0 when both are zero)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30)) if b.norm() > 0 else float(a.norm())


def _models(family: str):
    """The same freshly initialised model on the CPU and on CUDA. Tensors initialised to zero
    (timm's head, biases) get small random values: a zero head would zero every gradient
    behind it and make the comparison empty."""
    torch.manual_seed(0)
    cpu = create_model(f"{family}_n2_8", **SMALL)
    with torch.no_grad():
        for p in cpu.parameters():
            if not p.any():
                p.normal_(0.0, 0.02)
    return cpu, copy.deepcopy(cpu).to(CUDA)


def _batch(model, n: int = 16):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, *model.pretrained_cfg["input_size"], generator=gen)
    y = torch.randint(0, model.pretrained_cfg["num_classes"], (n,), generator=gen)
    return x, y


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_forward_and_backward_on_cuda_match_the_cpu(family):
    cpu, gpu = _models(family)
    x, y = _batch(cpu)
    results = []
    for model, dev in ((cpu, torch.device("cpu")), (gpu, CUDA)):
        model.train()  # the training graph (iMixer's power iteration runs in it)
        logits = model(x.to(dev))
        (F.cross_entropy(logits, y.to(dev)) + model.aux_loss()).backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        results.append((logits, grads))
    (ref, ref_grads), (out, grads) = results
    assert _rel(out, ref) < 1e-5
    assert grads.keys() == ref_grads.keys() and grads
    # a gradient that is a small sum of larger terms may lose relative precision: it passes
    # when it is close relative to itself or negligible against the whole gradient
    total = torch.stack([g.double().norm() for g in ref_grads.values()]).norm().item()
    for name, g in ref_grads.items():
        err = (grads[name].double().cpu() - g.double()).norm().item()
        assert _rel(grads[name], g) < 1e-4 or err < 1e-5 * total, name


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("dtype, tol", [(torch.float16, 5e-3), (torch.bfloat16, 3e-2)],
                         ids=["fp16", "bf16"])
def test_autocast_forward_is_finite_and_close_to_float32(family, dtype, tol):
    _, model = _models(family)
    x, y = _batch(model)
    x, y = x.to(CUDA), y.to(CUDA)
    model.eval()
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cuda", dtype=dtype):
            out = model(x)
    assert torch.isfinite(out).all()
    assert _rel(out.float(), ref) < tol
    loss, ref_loss = F.cross_entropy(out.float(), y), F.cross_entropy(ref, y)
    assert abs(loss.item() - ref_loss.item()) < tol * ref_loss.item()


@pytest.mark.parametrize("amp_dtype", ["float16", "bfloat16"])
def test_mixed_precision_training_tracks_float32(amp_dtype, tmp_path):
    ref = run_training(TrainConfig(**RUN, device="cuda", out=str(tmp_path / "fp32")))
    amp = run_training(TrainConfig(**RUN, device="cuda", amp=True, amp_dtype=amp_dtype,
                                   out=str(tmp_path / amp_dtype)))
    assert amp["amp"] == amp_dtype and ref["amp"] is None
    for a, r in zip(_rows(tmp_path / amp_dtype), _rows(tmp_path / "fp32"), strict=True):
        for key in ("train_loss", "test_loss"):
            assert a[key] == pytest.approx(r[key], rel=0.05), (a["epoch"], key)
    meta = json.loads((tmp_path / amp_dtype / "last.json").read_text())
    # float16 steps through a GradScaler, whose state is saved; bfloat16 needs none
    assert bool(meta.get("scaler")) == (amp_dtype == "float16")


@pytest.mark.parametrize("cfg", CONFIGS)
def test_energy_identity_in_float64_on_cuda(cfg):
    check_energy_identity(make_block(**cfg).to(CUDA), CUDA)


class _StopAfterFirstEpoch:
    """Interrupts the second epoch before its save: ``last`` holds epoch 1."""

    def __call__(self, model, epoch):
        if epoch == 2:
            raise KeyboardInterrupt


def test_a_checkpoint_written_on_cuda_loads_evaluates_and_resumes_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = TrainConfig(**{**RUN, "model": "symmixer_n2_8"}, device="cuda", out=str(out))
    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, hooks=[_StopAfterFirstEpoch()])
    weights, state, meta = load_checkpoint(out, prefer="last")
    assert weights and all(t.device.type == "cpu" for t in (*weights.values(), *state.values()))
    model, meta = load_model(out, prefer="last", device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    # the CPU evaluation of the CUDA-trained weights gives the accuracy the CUDA run logged
    assert main(["eval", "--checkpoint", str(out / "last.json"), "--device", "cpu",
                 "--limit", str(RUN["limit_test"]), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["top1"] == pytest.approx(_rows(out)[0]["test_acc"], abs=100 / RUN["limit_test"])
    # and the optimiser state written on CUDA continues the run on the CPU
    cfg.device, cfg.resume = "cpu", True
    summary = run_training(cfg)
    assert [r["epoch"] for r in _rows(out)] == [1, 2] and summary["device"] == "cpu"


def test_compiled_training_on_cuda(tmp_path):
    run_training(TrainConfig(**RUN, device="cuda", out=str(tmp_path / "eager")))
    got = run_training(TrainConfig(**RUN, device="cuda", compile=True,
                                   out=str(tmp_path / "compiled")))
    assert got["final_train_acc"] >= 0 and got["device"].startswith("cuda")
    for a, r in zip(_rows(tmp_path / "compiled"), _rows(tmp_path / "eager"), strict=True):
        assert a["train_loss"] == pytest.approx(r["train_loss"], rel=1e-3), a["epoch"]
    keys = load_file(str(tmp_path / "compiled" / "last.safetensors")).keys()
    assert keys and not any("_orig_mod" in k for k in keys)


def test_a_cuda_run_trains_with_tf32_by_default_and_restores_the_setting(tmp_path):
    matmul = torch.backends.cuda.matmul
    seen = []
    cfg = TrainConfig(**{**RUN, "epochs": 1, "tf32": True}, device="cuda",
                      out=str(tmp_path / "tf32"))
    run_training(cfg, hooks=[lambda model, epoch: seen.append(matmul.allow_tf32)])
    # the hooks run once before training (epoch 0) and after each epoch, inside it
    assert seen == [False, True] and matmul.allow_tf32 is False


def test_a_captured_training_step_updates_the_weights_as_the_eager_step():
    from hamixer.experiments.bench import make_runner

    kwargs = dict(shape="n2_8", mode="train", dtype="fp32", device=CUDA, batch=8)
    eager = make_runner("paramixer", **kwargs)
    graph = make_runner("paramixer", **kwargs, cuda_graph=True)  # 3 warm-up steps, recorded
    for _ in range(3):
        eager.step()
    for _ in range(2):  # replays
        eager.step()
        graph.step()
    torch.cuda.synchronize()
    for (name, a), b in zip(eager.model.named_parameters(), graph.model.parameters(),
                            strict=True):
        assert _rel(b, a) < 1e-5, name

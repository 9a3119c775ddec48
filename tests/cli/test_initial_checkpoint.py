"""``--initial-checkpoint PATH`` in ``train``, ``eval`` and ``symmetry``; ``symmetry
--pretrained`` without a network."""

import json
import socket
import time

import pytest
import torch
import yaml

from hamixer.cli import main
from hamixer.experiments.symmetry import flat_symmetry
from hamixer.measures.symmetry import symmetry_report
from hamixer.models import create_model, load_external, save_external
from hamixer.train.checkpoint import load_model
from models.official_reference import official_mixer

pytestmark = pytest.mark.integration  # runs the command line end to end

SIZE = ["num_blocks=1", "embed_dim=16"]
DATA = ["--limit-train", "64", "--limit-test", "32", "--batch-size", "32", "--quiet",
        "--threads", "1", "--dataset", "digits"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained SymMixer whose final norm is per token (so the official layout holds it),
    and its weights written in that layout."""
    out = tmp_path_factory.mktemp("train") / "run"
    assert main(["train", "--model", "symmixer", "--epochs", "1", "--out", str(out),
                 "--model-kwargs", *SIZE, "final_norm=token", *DATA]) == 0
    model, _ = load_model(out)
    save_external(model, out.parent / "official.pth", "paramixer")
    return out


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_eval_of_exported_weights_equals_eval_of_the_run(run, capsys):
    common = ["--dataset", "digits", "--limit", "64", "--json"]
    assert main(["eval", "--checkpoint", str(run), *common]) == 0
    of_run = _json(capsys)
    path = str(run.parent / "official.pth")
    assert main(["eval", "--model", "symmixer_n2_8", "--model-kwargs", *SIZE,
                 "--initial-checkpoint", path, *common]) == 0
    of_file = _json(capsys)
    assert of_file["checkpoint"] == path and of_file["weights"] == "file"
    assert of_file["images"] == 64
    assert (of_file["top1"], of_file["loss"]) == pytest.approx((of_run["top1"], of_run["loss"]))


def test_symmetry_of_a_file_equals_symmetry_of_the_loaded_model(tmp_path, capsys):
    ref = official_mixer("asymmixer", dim=16, num_blocks=1, num_classes=10)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))  # official gains that vary over (S, C)
    path = tmp_path / "asym.pth"
    torch.save({"state_dict": ref.state_dict()}, path)
    assert main(["symmetry", "--model", "asymmixer_n2_8", "--model-kwargs", *SIZE,
                 "--initial-checkpoint", str(path), "--json"]) == 0
    res = _json(capsys)
    # the file fixes the official norms: per token at the end, elementwise gains in blocks
    ours = create_model("asymmixer_n2_8", num_blocks=1, embed_dim=16, final_norm="token",
                        norm_affine="elementwise")
    load_external(ours, path)
    assert res["rows"] == symmetry_report(ours)["mlp"]  # measures and untrained references
    assert res["epoch"] is None and res["checkpoint"] == str(path)


def test_train_starts_from_the_file_and_records_it(run, tmp_path):
    path = str(run.parent / "official.pth")
    out = tmp_path / "finetune"
    assert main(["train", "--model", "symmixer", "--epochs", "1", "--out", str(out),
                 "--model-kwargs", *SIZE, "--initial-checkpoint", path, *DATA]) == 0
    source, _ = load_model(run)
    init = json.loads((out / "init_metrics.json").read_text())
    expected = flat_symmetry(source)
    assert {k: init[k] for k in expected} == pytest.approx(expected)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["initial_checkpoint"] == path
    assert config["model_kwargs"]["final_norm"] == "token"  # what the official file fixes
    assert yaml.safe_load((out / "args.yaml").read_text())["initial_checkpoint"] == path


@pytest.mark.parametrize("what,match", [
    ("absent", "no such checkpoint file"),
    ("timm", "cannot load symmixer_n2_8 in the timm layout"),
])
def test_train_with_an_unfitting_file_writes_nothing(tmp_path, capsys, what, match):
    path = tmp_path / "weights.pth"
    if what == "timm":
        from timm.models.mlp_mixer import MlpMixer

        torch.save(MlpMixer(num_classes=10, img_size=8, in_chans=1, patch_size=2,
                            num_blocks=1, embed_dim=16).state_dict(), path)
    out = tmp_path / "run"
    assert main(["train", "--model", "symmixer", "--epochs", "1", "--out", str(out),
                 "--model-kwargs", *SIZE, "--initial-checkpoint", str(path), *DATA]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hamixer train: error:") and match in err and "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize("argv,match", [
    (["symmetry", "--model", "symmixer_n2_8"], "needs weights: --initial-checkpoint PATH"),
    (["symmetry", "runs/x", "--model", "symmixer_n2_8"], "pass a checkpoint (a run) or --model"),
    (["symmetry", "--model", "symmixer_n2_8", "--pretrained"], "no pretrained weights exist"),
    (["eval", "--model", "symmixer_n2_8", "--initial-checkpoint", "x.pth"], "needs --dataset"),
    (["eval", "--dataset", "digits"], "pass either --checkpoint"),
])
def test_flag_combinations_that_give_no_weights_are_one_line_errors(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err


def test_pretrained_without_a_network_names_what_could_not_be_reached(tmp_path, monkeypatch,
                                                                      capsys):
    """No name resolves (as on a machine without a network) and no cache holds the weights;
    the hub's retries are not waited for."""
    import huggingface_hub.constants

    def no_network(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    assert main(["symmetry", "--model", "test_vit", "--pretrained"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("hamixer symmetry: error: cannot download pretrained weights for test_vit: "
                   "huggingface.co unreachable (no network); pass --initial-checkpoint PATH "
                   "with a local file")


@pytest.fixture
def hub_unreachable(tmp_path, monkeypatch):
    """The hub at a local port where nothing listens, an empty Hugging Face cache, and any
    retry (a sleep) an error: the test never reaches the real network."""
    import huggingface_hub.constants

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections to it are refused
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def no_retry(seconds):
        raise AssertionError(f"waited {seconds} s for a retry")

    monkeypatch.setattr(time, "sleep", no_retry)
    return port, tmp_path / "hf"


def test_pretrained_with_the_hub_unreachable_is_one_line_before_any_retry(hub_unreachable,
                                                                          capsys):
    port, _ = hub_unreachable
    assert main(["symmetry", "--model", "test_vit", "--pretrained"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"hamixer symmetry: error: cannot download pretrained weights for test_vit: "
                   f"127.0.0.1:{port} unreachable (connection to port {port} refused); pass "
                   "--initial-checkpoint PATH with a local file")


def test_pretrained_weights_in_the_cache_load_with_the_hub_unreachable(hub_unreachable,
                                                                       capsys):
    """Weights that an earlier download left in the cache are used, not refused."""
    import timm
    from safetensors.torch import save_file

    _, cache = hub_unreachable
    repo = timm.models.get_pretrained_cfg("test_vit").hf_hub_id
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True)
    torch.manual_seed(1)  # weights that a fresh model does not have
    published = timm.create_model("test_vit").state_dict()
    save_file(published, folder / "snapshots" / commit / "model.safetensors")
    from hamixer.cli._weights import pretrained_model

    model = pretrained_model("test_vit", {})
    assert all(torch.equal(model.state_dict()[k], v) for k, v in published.items())
    assert main(["symmetry", "--model", "test_vit", "--pretrained"]) == 0

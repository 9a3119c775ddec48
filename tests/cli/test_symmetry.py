"""``hamixer sweep``, ``symmetry`` and ``report`` end to end on tiny digits runs; symmetry
logging in ``train``; ``--init symmetric``."""

import json
import re

import pytest

from hamixer.cli import main

pytestmark = pytest.mark.integration  # runs the command line end to end

TINY = ["--model-kwargs", "num_blocks=1", "embed_dim=16", "--limit-train", "64",
        "--limit-test", "32", "--batch-size", "32", "--quiet", "--threads", "1",
        "--dataset", "digits"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    assert main(["train", "--model", "paramixer", "--epochs", "2", "--out", str(out),
                 *TINY]) == 0
    return out


def test_train_logs_symmetry_every_epoch(trained):
    rows = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert {"sym/0.token.cosine", "sym/0.channel.residual",
                "sym/mean.token.coupling_antisym"} <= set(r)
        assert -1 <= r["sym/0.token.cosine"] <= 1
    init = json.loads((trained / "init_metrics.json").read_text())
    assert init["epoch"] == 0 and "sym/0.channel.cosine" in init
    # the untrained reference, once: it depends on the shapes only
    assert abs(init["symref/0.channel.cosine"]) < 0.1 and "symref_std/0.token.cosine" in init
    assert not any(k.startswith("symref") for k in rows[-1])
    assert (trained / "symmetry-blocks.png").stat().st_size > 10_000
    # training moved the weights, so the measures changed from the initial state
    assert rows[-1]["sym/0.channel.scale"] != init["sym/0.channel.scale"]
    assert (trained / "symmetry.png").stat().st_size > 10_000
    assert (trained / "command.txt").read_text().startswith("hamixer train --model paramixer")


def test_no_symmetry_flag(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--model", "symmixer", "--epochs", "1", "--out", str(out),
                 "--no-symmetry", *TINY]) == 0
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert not any(k.startswith("sym/") for k in row)
    assert not (out / "symmetry.png").exists() and not (out / "init_metrics.json").exists()


def test_symmetry_command(trained, capsys, tmp_path):
    png = tmp_path / "sym.png"
    assert main(["symmetry", str(trained), "--prefer", "last", "--json",
                 "--plot", str(png)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["epoch"] == 2 and [(r["block"], r["mlp"]) for r in res["rows"]] == [
        (0, "token"), (0, "channel")]
    last = json.loads((trained / "metrics.jsonl").read_text().splitlines()[-1])
    assert res["rows"][1]["cosine"] == pytest.approx(last["sym/0.channel.cosine"], abs=1e-6)
    assert png.stat().st_size > 10_000
    assert main(["symmetry", str(trained / "last.json"), "--plot-blocks",
                 str(tmp_path / "blocks.png")]) == 0
    out = capsys.readouterr().out
    assert "| 0 | channel |" in out and "(init 0.0" in out and "untrained layer" in out
    assert (tmp_path / "blocks.png").stat().st_size > 10_000


def test_symmetry_command_errors(tmp_path, capsys):
    assert main(["symmetry", str(tmp_path)]) == 2
    assert "error" in capsys.readouterr().err


def test_init_symmetric_starts_tied(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--model", "vanillamixer", "--init", "symmetric", "--epochs", "1",
                 "--out", str(out), *TINY]) == 0
    init = json.loads((out / "init_metrics.json").read_text())
    for kind in ("token", "channel"):
        assert init[f"sym/0.{kind}.cosine"] == pytest.approx(1.0, abs=1e-6)
        assert init[f"sym/0.{kind}.residual"] == pytest.approx(0.0, abs=1e-3)
        assert init[f"sym/0.{kind}.coupling_antisym"] == pytest.approx(0.0, abs=1e-6)
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert row["sym/0.channel.cosine"] < 1 - 1e-9  # the updates break exact ties


def test_init_symmetric_rejected_for_tied_models(tmp_path, capsys):
    assert main(["train", "--model", "symmixer", "--init", "symmetric", "--epochs", "1",
                 "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "no effect" in capsys.readouterr().err


def test_sweep_and_report(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    assert main(["sweep", "--lambdas", "1e-2,0", "--epochs", "1", "--out", str(sweep),
                 *TINY]) == 0
    data = json.loads((sweep / "sweep.json").read_text())
    kinds = sorted((r["kind"], r.get("lambda")) for r in data["records"])
    assert kinds == [("asym", 0.0), ("asym", 0.01), ("para", None), ("sym", None),
                     ("vanilla", None)]
    assert all(r["breaking_ratio"] > 0 for r in data["records"] if r["kind"] == "asym")
    assert data["command"].startswith("hamixer sweep --lambdas 1e-2,0")
    assert {"torch", "timm", "python", "hamixer"} <= set(data["versions"])
    assert [r["lambda"] for r in data["aggregate"]["asym"]] == [0.01, 0.0]
    assert "| AsymMixer | 0.01 |" in (sweep / "sweep.md").read_text()
    assert (sweep / "sweep.png").stat().st_size > 10_000
    assert (sweep / "sweep-epochs.png").stat().st_size > 10_000
    assert (sweep / "asymmixer_n2_8-lambda0" / "seed0" / "symmetry.png").is_file()

    cmp_dir = tmp_path / "cmp"
    assert main(["compare", "--models", "paramixer,symmixer", "--init", "symmetric",
                 "--epochs", "1", "--seeds", "0,1", "--out", str(cmp_dir), *TINY]) == 0
    res = json.loads((cmp_dir / "results.json").read_text())
    assert res["command"].startswith("hamixer compare")
    assert res["runs"]["paramixer_n2_8"][0]["model_kwargs"]["init"] == "symmetric"
    assert "init" not in res["runs"]["symmixer_n2_8"][0]["model_kwargs"]

    report = tmp_path / "rep" / "report.md"
    capsys.readouterr()
    assert main(["report", str(cmp_dir), str(sweep),
                 str(sweep / "paramixer_n2_8" / "seed0"), "--out", str(report)]) == 0
    text = report.read_text()
    assert "## Comparison: digits" in text and "## λ sweep: digits" in text
    # where each table's runs were trained: the sweep's five, the comparison's two × two
    assert "Trained on: cpu (5 runs, torch " in text and "Trained on: cpu (4 runs, torch " in text
    assert "model arguments: num_blocks=1, embed_dim=16" in text  # what the plan changed
    # the sweep's section: the λ = 0 end against ParaMixer; the symmetry of the free
    # references and of the end (λ = 0, not the middle λ = 1e-2) from where it started
    assert "| 0 | xavier | ParaMixer |" in text and "– (one seed) |" in text
    assert ("Weight symmetry of the free references and of AsymMixer at the ends (one seed)"
            in text)
    assert "| vanillamixer_n2_8 | 1 |" in text
    assert "| AsymMixer λ=0, W̃ xavier | 0 |" in text and "λ=0.01" not in text
    # the symmetry of a comparison over its two seeds: mean ± std, epoch 0 and the end
    assert "Weight symmetry (mean ± std over seeds 0, 1)" in text
    para_rows = [ln for ln in text.splitlines()
                 if ln.startswith("| paramixer_n2_8 (init symmetric) |")]
    assert len(para_rows) == 2 and "| 0 | 1.000 ± 0.000 / 1.000 ± 0.000 |" in para_rows[0]
    assert para_rows[1].count(" ± ") >= 6
    # the sweep's models are named as trained (its default references include no ViT)
    assert ("models asymmixer_n2_8, symmixer_n2_8, paramixer_n2_8, vanillamixer_n2_8." in text
            and "vit" not in text)
    assert "## Training run: paramixer_n2_8" in text and "hamixer sweep --lambdas" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) >= 6  # curves, two per-model symmetry plots, sweep, one run's two
    assert "weight symmetry per block beside the untrained layers" in text
    for link in links:
        assert (report.parent / link).stat().st_size > 10_000, link
    assert main(["report", str(tmp_path / "nothing"), "--out", str(report)]) == 2


def test_report_on_dynamics(tmp_path):
    out = tmp_path / "dyn"
    assert main(["dynamics", "--tokens", "2", "--channels", "3", "--points", "41", "--t-max",
                 "4", "--method", "rk4", "--step-size", "0.05", "--out", str(out)]) == 0
    assert (out / "command.txt").read_text().startswith("hamixer dynamics --tokens 2")
    report = tmp_path / "r.md"
    assert main(["report", str(out), "--out", str(report)]) == 0
    text = report.read_text()
    assert "## Block dynamics" in text and "| symmetric |" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == 3 and all((tmp_path / link).is_file() for link in links)


def test_since_init_measures_how_training_moved_the_mlps(tmp_path, capsys):
    """Rebuilt from the seed, the start matches what the run logged at epoch 0; W2 moves as
    W1ᵀ does in SymMixer, independently in ParaMixer, in between in AsymMixer (λ = 0)."""
    cosines = {}
    for model, extra in (("symmixer", []), ("paramixer", []),
                         ("asymmixer", ["asym_lambda=0", "breaking_init=free"])):
        out = tmp_path / model
        tiny = [*TINY[:3], *extra, *TINY[3:]]  # more --model-kwargs
        assert main(["train", "--model", model, "--epochs", "2", "--seed", "3", "--out",
                     str(out), *tiny]) == 0
        capsys.readouterr()
        assert main(["symmetry", str(out), "--since-init", "--json", "--no-reference",
                     "--prefer", "last"]) == 0
        res = json.loads(capsys.readouterr().out)["since_init"]
        assert res["seed"] == 3 and res["checked"] is True
        cosines[model] = {r["mlp"]: r["update_cosine"] for r in res["rows"]
                          if r["block"] == "mean"}
        # training logged the same every epoch (not at epoch 0, where nothing has moved)
        last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        for part, value in cosines[model].items():
            assert last[f"sym/mean.{part}.update_cosine"] == pytest.approx(value, abs=1e-9)
        assert "sym/0.token.w2_moved" in last
        init = json.loads((out / "init_metrics.json").read_text())
        assert not any(k.endswith(("update_cosine", "_moved")) for k in init)
        # a resumed run's hook rebuilds the start from the checkpoint: the same values
        from hamixer.experiments.weight_updates import UpdateHook
        from hamixer.train.checkpoint import load_model

        trained, _ = load_model(out, prefer="last")
        assert UpdateHook(out)(trained, 2) == pytest.approx(
            {k: v for k, v in last.items() if k.endswith(("update_cosine", "_moved"))})
        assert main(["symmetry", str(out), "--since-init", "--no-reference"]) == 0
        text = capsys.readouterr().out
        assert "rebuilt from seed 3; they match the run's epoch-0 measures" in text
    for part in ("token", "channel"):
        assert cosines["symmixer"][part] == pytest.approx(1.0)
        assert abs(cosines["paramixer"][part]) < 0.5
        assert 0.3 < cosines["asymmixer"][part] < 0.99


def test_since_init_refuses_a_start_it_cannot_rebuild(trained, capsys, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    init = json.loads((run / "init_metrics.json").read_text())
    init["sym/0.token.cosine"] += 0.01  # the run did not start where the seed says
    (run / "init_metrics.json").write_text(json.dumps(init))
    assert main(["symmetry", str(run), "--since-init"]) == 2
    err = capsys.readouterr().err
    assert "do not match the run's epoch-0 measures (sym/0.token.cosine" in err
    assert len(err.strip().splitlines()) == 1
    (run / "init_metrics.json").unlink()  # nothing to check against: measured, and said so
    assert main(["symmetry", str(run), "--since-init", "--no-reference"]) == 0
    assert "logged no epoch-0 measures to check them against" in capsys.readouterr().out
    assert main(["symmetry", "--model", "paramixer_n2_8", "--since-init"]) == 2
    assert "--since-init needs a run's checkpoint" in capsys.readouterr().err

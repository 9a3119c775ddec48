"""A run's iterated energies (`hamixer energy`, `hamixer compare --n-iters`) and their record."""

import json

import pytest

from hamixer.cli import main


@pytest.mark.integration
def test_energy_command_on_a_trained_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "symmixer", "--dataset", "digits", "--epochs", "1",
                 "--model-kwargs", "num_blocks=2", "embed_dim=16", "n_iter=2",
                 "--limit-train", "64", "--limit-test", "32", "--quiet", "--threads", "1",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["energy", str(out), "--images", "16", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_iter"] == 2 and res["images"] == 16 and len(res["energies"]) == 2
    assert res["applications"] == 4


TINY = ["--dataset", "digits", "--epochs", "1", "--model-kwargs", "num_blocks=2",
        "embed_dim=16", "--limit-train", "64", "--limit-test", "32", "--quiet",
        "--threads", "1"]


@pytest.mark.integration
def test_compare_n_iters_is_the_study_in_one_command(tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["compare", "--models", "symmixer,vanillamixer", "--n-iters", "1,2",
            "--seeds", "0", "--out", str(out), *TINY]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    rows = {(r["architecture"], r["n_iter"]): r for r in res["models"]}
    assert sorted(rows) == [("symmixer_n2_8", 1), ("symmixer_n2_8", 2),
                            ("vanillamixer_n2_8", 1), ("vanillamixer_n2_8", 2)]
    sym2 = out / "symmixer_n2_8-niter2" / "seed0"
    assert json.loads((sym2 / "iterated_energy.json").read_text())["n_iter"] == 2
    # two blocks, each applied n times; the free Mixer has no energy to descend
    assert rows["symmixer_n2_8", 2]["descent"]["applications"] == 4
    assert rows["symmixer_n2_8", 1]["descent"]["applications"] == 2
    assert rows["vanillamixer_n2_8", 2]["descent"] is None
    table = (out / "results.md").read_text()
    assert "| n_iter |" in table and "energy descent" in table and "of 4 lowered" in table
    # the records alone re-make the table: no checkpoint, nothing trained, the same descent;
    # the free Mixer's folders keep best.json and last.json without their weights, as a copy
    # that leaves out the checkpoints does
    for ckpt in out.glob("*/seed0/*.safetensors"):
        ckpt.unlink()
    for meta in out.glob("symmixer*/seed0/*.json"):
        if meta.name in ("best.json", "last.json"):
            meta.unlink()
    capsys.readouterr()
    assert main(argv) == 0
    assert "finished run, read" in capsys.readouterr().out
    again = json.loads((out / "results.json").read_text())
    assert [r["descent"] for r in again["models"]] == [r["descent"] for r in res["models"]]


@pytest.mark.integration
@pytest.mark.parametrize("extra, needle", [
    (["--n-iters", "0,1"], "--n-iters must be distinct positive integers"),
    (["--n-iters", "2,2"], "--n-iters must be distinct positive integers"),
    (["--n-iters", "a"], "--n-iters must be comma-separated positive integers, got 'a'"),
    (["--n-iters", "2", "--model-kwargs", "n_iter=2"], "not both"),
])
def test_compare_n_iters_bad_input(tmp_path, capsys, extra, needle):
    out = tmp_path / "study"
    argv = ["compare", "--models", "symmixer", "--out", str(out), *TINY, *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.integration
def test_energy_command_on_a_model_without_one(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "vanillamixer", "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    assert main(["energy", str(out), "--images", "8"]) == 2
    err = capsys.readouterr().err
    assert "has no energy" in err and err.count("\n") == 1

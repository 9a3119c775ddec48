"""``--log-wandb`` (an optional extra); timm's ``-j/--workers`` is not a hamixer flag."""

import json
import sys
import types

import pytest

from hamixer.cli import main

pytestmark = pytest.mark.integration

SMALL = ["--dataset", "digits", "--epochs", "2", "--limit-train", "64", "--limit-test", "32",
         "--batch-size", "32", "--quiet", "--threads", "1", "--model-kwargs", "num_blocks=1",
         "embed_dim=16", "--no-symmetry"]


def test_log_wandb_without_wandb_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # an import of it fails, as when absent
    out = tmp_path / "run"
    assert main(["train", "--log-wandb", "--out", str(out), *SMALL]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hamixer train: error: --log-wandb needs wandb, which is not installed: "
                   "pip install 'hamixer[wandb]' (or pip install wandb)"]
    assert not out.exists()


def test_log_wandb_sends_every_epoch_row(tmp_path, monkeypatch):
    calls = []
    fake = types.SimpleNamespace(init=lambda **kw: calls.append(("init", kw)),
                                 log=lambda row, step: calls.append(("log", step, row)))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    out = tmp_path / "run"
    assert main(["train", "--log-wandb", "--wandb-project", "p", "--out", str(out),
                 *SMALL]) == 0
    assert calls[0][0] == "init" and calls[0][1]["project"] == "p"
    assert calls[0][1]["config"]["epochs"] == 2
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [c for c in calls if c[0] == "log"]
    assert [c[1] for c in logged] == [1, 2]
    assert [c[2]["test_acc"] for c in logged] == [r["test_acc"] for r in rows]


def test_timm_workers_flag_is_refused_before_anything_is_written(tmp_path, capsys):
    """The data is in memory and batched in the training process: there are no workers to
    set, so the flag is an error like any other unknown one, not silently ignored."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        main(["train", "-j", "4", "--out", str(out), *SMALL])
    assert stop.value.code == 2
    assert "unrecognized arguments: -j 4" in capsys.readouterr().err
    assert not out.exists()

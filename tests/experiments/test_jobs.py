"""``--jobs N``: several trainings at a time in worker processes, resumable, one table."""

import json

import pytest

from hamixer.cli import main
from hamixer.experiments.jobs import run_progress

pytestmark = pytest.mark.integration  # runs the command line end to end

TINY = ["--model-kwargs", "num_blocks=1", "embed_dim=16", "--limit-train", "64",
        "--limit-test", "32", "--batch-size", "32", "--quiet", "--dataset", "digits"]


def test_compare_with_two_jobs_matches_one_job(tmp_path, capsys):
    args = ["compare", "--models", "paramixer,symmixer", "--seeds", "0", "--epochs", "2",
            *TINY]
    assert main([*args, "--jobs", "2", "--out", str(tmp_path / "two")]) == 0
    assert main([*args, "--threads", "1", "--out", str(tmp_path / "one")]) == 0
    for model in ("paramixer_n2_8", "symmixer_n2_8"):
        run = tmp_path / "two" / model / "seed0"
        assert (run / "job.log").is_file() and run_progress(run)[0] == 2.0
        two = json.loads((run / "summary.json").read_text())
        one = json.loads((tmp_path / "one" / model / "seed0" / "summary.json").read_text())
        # a worker trains the same run as this process does: same numbers
        assert two["final_test_acc"] == one["final_test_acc"]
        assert two["threads"] == 1
    table = (tmp_path / "two" / "results.md").read_text()
    assert "| paramixer_n2_8 |" in table and "| symmixer_n2_8 |" in table


def test_failed_worker_is_named(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--models", "paramixer,symmixer", "--seeds", "0", "--epochs", "1",
            "--jobs", "2", "--out", str(out), *TINY]
    assert main(args) == 0
    # a run directory that now disagrees with the plan fails in its worker, not silently
    for model in ("paramixer_n2_8", "symmixer_n2_8"):  # neither counts as finished now
        (out / model / "seed0" / "summary.json").unlink()
    last = out / "symmixer_n2_8" / "seed0" / "last.json"
    meta = json.loads(last.read_text())
    meta["config"]["label_smoothing"] = 0.2
    last.write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 of 2 runs failed: symmixer_n2_8 seed 0" in err and "job.log" in err


def test_bad_jobs_value(tmp_path, capsys):
    assert main(["compare", "--jobs", "0", "--out", str(tmp_path / "x"), *TINY]) == 2
    assert "--jobs must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_finished_runs_tabulate_from_their_records_alone(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--models", "paramixer", "--seeds", "0,1", "--epochs", "1",
            "--out", str(out), *TINY]
    assert main(args) == 0
    table = (out / "results.md").read_text()
    for run in (out / "paramixer_n2_8").iterdir():  # keep config, metrics and summary only
        for f in run.iterdir():
            if f.name not in ("config.yaml", "metrics.jsonl", "summary.json"):
                f.unlink()
    capsys.readouterr()
    assert main([*args, "--jobs", "2"]) == 0
    assert "(finished run, read)" in capsys.readouterr().out
    assert (out / "results.md").read_text() == table
    assert not (out / "paramixer_n2_8" / "seed0" / "last.json").exists()  # nothing trained
    # the same directory asked for other settings is refused, not silently re-used
    assert main([*args, "--label-smoothing", "0.2"]) == 2
    assert "was trained with label_smoothing=0.1" in capsys.readouterr().err


def test_arguments_at_their_defaults_name_the_same_run(tmp_path, capsys):
    # the n_iter study's n_iter = 1 is the model as registered: its run is that of a
    # comparison without n_iter, and is read, not trained again; another n_iter is refused
    out = tmp_path / "cmp"
    args = ["compare", "--models", "paramixer", "--seeds", "0", "--epochs", "1",
            "--out", str(out), *TINY]
    assert main(args) == 0
    kwargs = args.index("embed_dim=16") + 1
    capsys.readouterr()
    assert main([*args[:kwargs], "n_iter=1", *args[kwargs:]]) == 0
    assert "(finished run, read)" in capsys.readouterr().out
    assert main([*args[:kwargs], "n_iter=2", *args[kwargs:]]) == 2
    assert "was trained with model_kwargs=" in capsys.readouterr().err

import pytest

from hamixer.experiments.sweep import aggregate, format_sweep_md, plot_sweep


def _records():
    recs = []
    for seed, off in ((0, 0.0), (1, 1.0)):
        recs.append(dict(kind="sym", seed=seed, best_acc=80 + off, final_acc=79 + off))
        recs.append(dict(kind="para", seed=seed, best_acc=90 + off, final_acc=89 + off))
        for lam, acc, ratio in ((1.0, 81, 0.01), (1e-3, 85, 0.2), (0.0, 90, 0.9)):
            recs.append(dict(kind="asym", seed=seed, **{"lambda": lam}, best_acc=acc + off,
                             final_acc=acc + off - 1, breaking_ratio=ratio))
    return recs


def test_aggregate_means_and_stds():
    agg = aggregate(_records())
    assert [r["lambda"] for r in agg["asym"]] == [1.0, 1e-3, 0.0]
    row = agg["asym"][1]
    assert row["best_acc"] == pytest.approx(85.5) and row["n_seeds"] == 2
    assert row["best_acc_std"] == pytest.approx(0.7071, rel=1e-3)
    assert agg["reference"]["sym"]["best_acc"] == pytest.approx(80.5)


def test_markdown_and_plot(tmp_path):
    agg = aggregate(_records())
    md = format_sweep_md(agg)
    assert md.splitlines()[2].startswith("| SymMixer") and md.splitlines()[-1].startswith(
        "| ParaMixer")
    assert "85.50 ± 0.71" in md
    out = tmp_path / "sweep.png"
    plot_sweep(agg, out)
    assert out.read_bytes()[:4] == b"\x89PNG"

import pytest

from hamixer.experiments.sweep import (
    SweepPlan,
    aggregate,
    format_sweep_md,
    middle_note,
    seeds_title,
)
from hamixer.plots import plot_sweep


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


def test_ends_meet_their_references_within_one_std():
    from hamixer.experiments.sweep import format_ends_md

    recs = _records()
    for r in recs:  # λ = 0 one point below ParaMixer, with a seed spread of 2 points
        if r["kind"] == "asym" and r["lambda"] == 0.0:
            r["best_acc"] = 89 + (2.0 if r["seed"] else -2.0) / 2 ** 0.5
    lines = format_ends_md(aggregate(recs)).splitlines()
    assert lines[0] == "| λ | W̃ start | reference | Δ best top-1 (points) | meets it |"
    # λ = 1 (81.5 vs SymMixer 80.5, σ 0.71): no; λ = 1e-3 is not an end; λ = 0 (89 vs 90.5,
    # σ 2): yes
    assert lines[2:] == ["| 1 | xavier | SymMixer | +1.00 | no (σ = 0.71) |",
                         "| 0 | xavier | ParaMixer | -1.50 | yes (σ = 2.00) |"]
    one_seed = [r for r in recs if r["seed"] == 0]
    assert "– (one seed)" in format_ends_md(aggregate(one_seed))
    assert format_ends_md(aggregate([r for r in recs if r["kind"] == "asym"])) == ""


def test_epoch_series_from_run_directories(tmp_path):
    import json

    from hamixer.experiments.sweep import epoch_series
    from hamixer.plots import plot_sweep_epochs

    recs = []
    for seed in (0, 1):
        for kind, lam, init in (("asym", 0.0, "free"), ("asym", 0.0, "zero"),
                                ("para", None, "xavier")):
            out = tmp_path / f"{kind}{lam}{init}{seed}"
            out.mkdir()
            rows = [{"epoch": e, "test_acc": 80.0 + e + seed,
                     "sym/mean.token.breaking_ratio": 0.1 * e,
                     "sym/mean.channel.breaking_ratio": 0.3 * e} for e in (1, 2)]
            (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            if kind == "asym":
                (out / "init_metrics.json").write_text(json.dumps(
                    {"epoch": 0, "sym/mean.token.breaking_ratio": 0.0,
                     "sym/mean.channel.breaking_ratio": 0.0}))
            recs.append({"kind": kind, "lambda": lam, "breaking_init": init, "seed": seed,
                         "out": str(out)})
    asym, refs = epoch_series(recs)
    assert set(asym) == {(0.0, "free"), (0.0, "zero")} and list(refs) == ["ParaMixer"]
    assert asym[(0.0, "free")]["ratio"] == pytest.approx([0.0, 0.2, 0.4])
    assert asym[(0.0, "free")]["acc"] == pytest.approx([81.5, 82.5])
    assert refs["ParaMixer"] == pytest.approx([81.5, 82.5])
    png = tmp_path / "epochs.png"
    plot_sweep_epochs(asym, refs, png, "t")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_plan_spends_seeds_and_starts_on_the_ends():
    """The finding-2 plan: every start of W̃ and two seeds at the ends (λ ≥ 1, λ = 0) and for
    the references; the middle of the range once, from the Xavier start."""
    plan = SweepPlan(lambdas=(10.0, 1e-2, 0.0), seeds=(0, 1),
                     breaking_inits=("xavier", "zero", "free"), references=("sym",),
                     mid_seeds=(0,), mid_breaking_inits=("xavier",))
    entries = plan.entries()
    assert entries[:5] == [("sym", None, "xavier", 0), ("asym", 10.0, "xavier", 0),
                           ("asym", 10.0, "zero", 0), ("asym", 10.0, "free", 0),
                           ("asym", 0.01, "xavier", 0)]
    assert [e for e in entries if e[1] == 1e-2] == [("asym", 0.01, "xavier", 0)]
    assert len([e for e in entries if e[1] == 0.0]) == 6  # 3 starts × 2 seeds
    assert len(entries) == 2 * (1 + 3 + 3) + 1
    assert middle_note(plan.mid_seeds, plan.mid_breaking_inits) == (
        " (0 < λ < 1: seeds 0; W̃ start xavier)")
    assert middle_note(None, None) == ""
    # the figure's title counts the middle's seeds apart from the ends'
    assert seeds_title(plan.seeds, plan.mid_seeds) == "2 seeds at the ends, 1 in between"
    assert seeds_title((0, 1), None) == seeds_title((0, 1), (2, 3)) == "2 seeds"
    assert seeds_title((0,), None) == "1 seed"
    # without the mid-range settings, the middle gets what the ends get
    assert len(SweepPlan(lambdas=(1e-2,), seeds=(0, 1), breaking_inits=("zero", "free"),
                         references=()).entries()) == 4


def test_plot_draws_each_form_of_a_transformer_sweep(tmp_path):
    recs = _records()
    for r in recs:
        if r["kind"] == "asym":
            r.update({"mlp.breaking_ratio": r["breaking_ratio"] / 2,
                      "attn.value_breaking_ratio": r["breaking_ratio"] * 2})
    forms = {"mlp.breaking_ratio": "MLP", "attn.value_breaking_ratio": "W_V"}
    fig = plot_sweep(aggregate(recs, "former"), tmp_path / "sweep.png", forms=forms)
    ratio_panel = fig.axes[1]
    lines = {ln.get_label(): list(ln.get_ydata()) for ln in ratio_panel.get_lines()}
    assert lines["MLP"] == [0.005, 0.1, 0.45] and lines["W_V"] == [0.02, 0.4, 1.8]
    assert {"MLP", "W_V"} <= {t.get_text() for t in ratio_panel.get_legend().get_texts()}
    # a Mixer sweep's one ratio: no form lines, no legend with one W̃ start
    assert plot_sweep(aggregate(_records()), tmp_path / "m.png").axes[1].get_legend() is None

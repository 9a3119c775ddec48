"""``hamixer memory capacity``: small sweeps end to end, theory helpers, one-line errors."""

import json

import pytest

from hamixer.cli import main
from hamixer.experiments.capacity import (
    CapacityConfig,
    ags_alpha_at,
    ags_overlap,
    crossing,
    one_step_capacity,
    run_capacity,
)


def test_theory_helpers_match_known_values():
    assert ags_overlap(0.05) > 0.9999 and ags_overlap(0.14) is None
    assert 0.96 < ags_overlap(0.1379) < 0.975  # m at α_c (AGS: 0.967)
    assert 0.12 < ags_alpha_at(0.99) < 0.13
    assert crossing([1, 2, 4], [1.0, 0.75, 0.25]) == pytest.approx(2 * 2 ** 0.5)
    # Error-free retrieval at N = 100: P ≈ N / (2 ln N) up to the binomial's discreteness.
    assert 5 < one_step_capacity(2, 100) < 20


@pytest.mark.slow
def test_small_random_sweeps_reproduce_the_scalings():
    cfg = CapacityConfig(sweeps=("classical", "polynomial"), small=True, repeats=2, probes=60,
                         sizes={"classical": (200,), "polynomial": {3: (40, 60, 90)}})
    result = run_capacity(cfg)
    alpha = result["sweeps"]["classical"]["summary"]["200"]["alpha_half"]
    assert 0.09 < alpha < 0.18
    exponent = result["sweeps"]["polynomial"]["summary"]["3"]["exponent"]
    assert 1.6 < exponent < 2.4


@pytest.mark.integration
def test_capacity_command_writes_json_table_and_figures(tmp_path, capsys):
    out = tmp_path / "cap"
    rc = main(["memory", "capacity", "--small", "--repeats", "1", "--probes", "30",
               "--no-progress", "--out", str(out)])
    assert rc == 0
    data = json.loads((out / "capacity.json").read_text())
    assert set(data["sweeps"]) == {"classical", "polynomial", "exponential"}
    rows = data["sweeps"]["exponential"]["rows"]
    lse = [r for r in rows if r["lagrangian"] == "lse"]
    classical = [r for r in rows if r["lagrangian"] == "n2"]
    assert lse[-1]["retrieved"] > 0.9 > classical[-1]["retrieved"]  # P = 16 N
    for name in ("capacity.md", "capacity_classical.png", "capacity_polynomial.png",
                 "capacity_exponential.png"):
        assert (out / name).stat().st_size > 0
    printed = capsys.readouterr().out
    assert "overlap" in printed and "0.99" in printed and "α_c" in printed


@pytest.mark.slow
def test_image_sweeps_on_digits():
    from hamixer.data import load_digits_arrays

    cfg = CapacityConfig(sweeps=("images", "beta"), small=True, repeats=1, probes=30,
                         betas=(0.5, 512.0))
    result = run_capacity(cfg, load_digits_arrays(True).images)
    images = result["sweeps"]["images"]["summary"]["n2"]
    assert images["random_over_images"] is None or images["random_over_images"] > 1
    rows = result["sweeps"]["beta"]["rows"]
    low = [r for r in rows if r["beta"] == 0.5]
    high = [r for r in rows if r["beta"] == 512.0]
    assert all(r["mixture"] > 0.9 for r in low)  # small β: one mixture of everything
    assert all(h["retrieved"] > lo["retrieved"] for h, lo in zip(high, low, strict=True))


@pytest.mark.parametrize("argv,needle", [
    (["--sweeps", "classic"], "unknown sweep"),
    (["--flip", "0.5"], "--flip"),
    (["--probes", "0"], "--probes"),
    (["--betas", "a,b"], "--betas"),
    (["--betas", "-1"], "--betas"),
    (["--data-dir", "/tmp"], "--data-dir"),
    (["--sweeps", "images", "--dataset", "fashion-mnist", "--data-dir", "/nonexistent/x"],
     "not found"),
])
def test_capacity_bad_input_is_one_line_error(tmp_path, capsys, argv, needle):
    out = tmp_path / "x"
    rc = main(["memory", "capacity", "--out", str(out), "--no-progress", *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and needle in err, err
    assert not out.exists()

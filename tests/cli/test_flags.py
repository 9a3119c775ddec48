"""The flags that compare and sweep share (hamixer.cli.flags): seeds, positive integers, jobs."""

import pytest

from hamixer.cli import main
from hamixer.cli.flags import check_jobs, parse_seeds, positive_ints
from hamixer.errors import ConfigError


def test_seeds_and_positive_integers_are_comma_separated_and_distinct():
    assert parse_seeds("0,1, 2,") == [0, 1, 2] and parse_seeds("-1") == [-1]
    assert positive_ints("1,2,3", "--n-iters") == [1, 2, 3]
    for bad in ("", "0,0", "a"):
        with pytest.raises(ConfigError, match="--seeds must be"):
            parse_seeds(bad)
    for bad in ("0", "2,2", ""):
        with pytest.raises(ConfigError, match="--n-iters must be distinct positive integers"):
            positive_ints(bad, "--n-iters")
    with pytest.raises(ConfigError, match="--n-iters must be comma-separated positive integers"):
        positive_ints("1,x", "--n-iters")
    with pytest.raises(ConfigError, match="--mid-seeds must be distinct integers"):
        parse_seeds("1,1", "--mid-seeds")
    check_jobs(1)
    with pytest.raises(ConfigError, match="--jobs must be >= 1, got 0"):
        check_jobs(0)


@pytest.mark.parametrize("argv, needle", [
    (["compare", "--seeds", "0,0"], "--seeds must be distinct integers, got '0,0'"),
    (["sweep", "--seeds", "x"], "--seeds must be comma-separated integers, got 'x'"),
    (["compare", "--jobs", "0"], "--jobs must be >= 1, got 0"),
    (["sweep", "--jobs", "0"], "--jobs must be >= 1, got 0"),
])
def test_compare_and_sweep_refuse_bad_seeds_and_jobs_in_one_line(tmp_path, capsys, argv,
                                                                  needle):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()

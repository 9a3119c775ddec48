import json

import pytest

from hamixer.cli import main

pytestmark = pytest.mark.integration  # runs the command line end to end


def test_models_lists_names(capsys):
    assert main(["models", "symmixer_*", "--names-only"]) == 0
    out = capsys.readouterr().out.split()
    assert "symmixer_s16_224" in out and all(n.startswith("symmixer_") for n in out)


def test_models_json_has_params_and_macs(capsys):
    assert main(["models", "symmixer_t4_28", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["params"] > 0 and rows[0]["gmacs"] > 0


def test_unknown_pattern_is_one_line_error(capsys):
    assert main(["models", "nosuchmodel*"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hamixer models: error:") and "\n" not in err

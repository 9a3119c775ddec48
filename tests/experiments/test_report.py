"""The report's provenance lines, on summaries as the trainer writes them."""

from hamixer.experiments.report import trained_on_line


def test_trained_on_line_counts_runs_per_device_with_their_torch():
    summaries = [
        {"device": "cpu", "versions": {"torch": "2.14.1"}},
        {"device": "cuda:0", "versions": {"torch": "2.11.0"}},
        {"device": "cpu", "versions": {"torch": "2.14.1"}},
        {"device": "cuda", "versions": {"torch": "2.11.0"}},
        {"device": "cuda", "versions": {"torch": "2.12.0"}},
    ]
    assert trained_on_line(summaries) == (
        "Trained on: cpu (2 runs, torch 2.14.1); cuda (3 runs, torch 2.11.0, 2.12.0).\n")


def test_trained_on_line_without_runs_or_versions():
    assert trained_on_line([]) == ""
    assert trained_on_line([{"device": "cpu"}]) == "Trained on: cpu (1 run).\n"
    assert trained_on_line([{}]) == "Trained on: unknown (1 run).\n"

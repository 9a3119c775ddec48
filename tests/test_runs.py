"""The run directory's names and its one reader (hamixer.runs)."""

import json

import pytest

from hamixer import runs
from hamixer.errors import HamixerError


def test_a_training_run_is_told_by_the_files_the_trainer_writes(tmp_path):
    assert runs.run_records(tmp_path) == {}
    (tmp_path / runs.METRICS).write_text("")
    (tmp_path / runs.LAST_CHECKPOINT).write_text("{}")
    assert runs.run_records(tmp_path) == {"training run": ["last.json", "metrics.jsonl"]}
    assert runs.has_checkpoint(tmp_path) and not runs.has_checkpoint(tmp_path,
                                                                    runs.BEST_CHECKPOINT)


def test_records_read_back_and_are_none_where_absent(tmp_path):
    assert runs.read_summary(tmp_path) is None and runs.read_init_metrics(tmp_path) is None
    assert runs.read_config(tmp_path) is None and runs.read_checkpoint_record(tmp_path) is None
    (tmp_path / runs.SUMMARY).write_text(json.dumps({"epochs": 3}))
    (tmp_path / runs.CONFIG).write_text("model: paramixer_n2_8\nepochs: 3\n")
    assert runs.read_summary(tmp_path) == {"epochs": 3}
    assert runs.read_config(tmp_path) == {"model": "paramixer_n2_8", "epochs": 3}


@pytest.mark.parametrize("name, text, needle", [
    (runs.SUMMARY, "{not json", "not valid JSON"),
    (runs.INIT_METRICS, "\xff\xfe", "not valid JSON"),
    (runs.CONFIG, "a: [1", r"not a readable configuration \(invalid YAML, line 1\)"),
    (runs.CONFIG, "a: \xff", r"not a readable configuration \(not UTF-8 text\)"),
    (runs.CONFIG, "- 1\n- 2\n", "expected a mapping of settings, got list"),
])
def test_a_damaged_record_is_one_line_naming_the_file(tmp_path, name, text, needle):
    (tmp_path / name).write_bytes(text.encode("latin-1"))
    read = {runs.SUMMARY: runs.read_summary, runs.INIT_METRICS: runs.read_init_metrics,
            runs.CONFIG: runs.read_config}[name]
    with pytest.raises(HamixerError, match=needle) as info:
        read(tmp_path)
    assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value)


def test_a_checkpoint_record_being_written_reads_as_none(tmp_path):
    # a run still writing its checkpoint is followed, not failed
    (tmp_path / runs.LAST_CHECKPOINT).write_text('{"epoch": 2, "st')
    assert runs.read_checkpoint_record(tmp_path) is None
    (tmp_path / runs.LAST_CHECKPOINT).write_text('{"epoch": 2, "step": 5}')
    assert runs.read_checkpoint_record(tmp_path) == {"epoch": 2, "step": 5}

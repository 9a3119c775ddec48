"""The tables in results/ and the findings on README.md are what the run records say.

* Every ``results/X`` folder is re-tabulated from its run records alone: its
  ``command.txt`` is run again, through the command line, on a copy of ``results/`` from
  which the tables (``results.{md,json}``, ``sweep.{md,json}``) are removed. Every run of
  the plan must have its finished record (``config.yaml``, ``summary.json``,
  ``metrics.jsonl``); a run without one fails the test instead of being trained. The
  rebuilt tables must equal the committed ones.
* Every measured number of README.md's findings (decimals such as ``98.33`` or ``6e-5``,
  and counts such as ``36 of 36``; the settings ``λ = 1e-4`` and table headers are not
  results) is claimed below by a value computed from the records of the ``results/``
  folder whose command is quoted next to it, and agrees with it to the digits it shows. A
  number that no claim covers has no record and fails the test.

No training and no data set: only the committed records are read.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
README = ROOT / "README.md"
FOLDERS = sorted(p.name for p in RESULTS.iterdir() if (p / "command.txt").is_file())
#: The files a command writes from its runs: left out of the copy, so they are rebuilt.
TABLES = ("results.md", "results.json", "sweep.md", "sweep.json")
#: Keys of a rebuilt JSON that say where and with what it was made, not what it found.
_PROVENANCE = ("versions",)


def _copy_records(dst: Path) -> None:
    """``results/`` into ``dst`` without its tables and figures (links kept as links)."""
    def ignore(folder: str, names: list[str]) -> list[str]:
        top = Path(folder).parent == RESULTS
        return [n for n in names if n.endswith(".png") or (top and n in TABLES)]

    shutil.copytree(RESULTS, dst, symlinks=True, ignore=ignore)


class MissingRecord(AssertionError):
    """A run of a folder's plan has no finished record: the table cannot be made from the
    records (and the run is not trained)."""


def from_records(jobs: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
    """The commands' :func:`~hamixer.experiments.jobs.run_jobs`, which reads back the
    finished runs and trains the others, allowed to read only."""
    from hamixer.experiments.jobs import finished_summary, run_jobs

    missing = [job.label for job in jobs if finished_summary(job.cfg) is None]
    if missing:
        raise MissingRecord(f"runs of the plan without a finished record: {', '.join(missing)}")
    return run_jobs(jobs, *args, **kwargs)


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``results/`` whose tables each folder's command has made again from the
    records; the folder's exit status is in ``<folder>/.rc``."""
    import hamixer.experiments.compare as compare
    import hamixer.experiments.sweep as sweep
    import hamixer.plots as plots
    from hamixer import provenance
    from hamixer.cli.main import main

    base = tmp_path_factory.mktemp("rebuilt")
    _copy_records(base / "results")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compare, "run_jobs", from_records)
        mp.setattr(sweep, "run_jobs", from_records)
        for figure in ("plot_sweep", "plot_sweep_epochs"):  # figures are not compared
            mp.setattr(plots, figure, lambda *a, **k: None)
        mp.setattr(compare, "plot_curves", lambda *a, **k: None)
        mp.setattr(provenance, "_COMMAND", provenance._COMMAND)
        mp.delenv("HAMIXER_DATA_DIR", raising=False)
        mp.chdir(base)
        for name in FOLDERS:
            argv = shlex.split((RESULTS / name / "command.txt").read_text())
            assert argv[0] == "hamixer", f"results/{name}/command.txt: not a hamixer command"
            try:
                rc = main(argv[1:])
            except MissingRecord as err:
                (base / "results" / name).mkdir(exist_ok=True)
                (base / "results" / name / ".error").write_text(str(err))
                rc = -1
            (base / "results" / name / ".rc").write_text(str(rc))
    return base / "results"


def _check_rebuilt(rebuilt: Path, name: str) -> Path:
    folder = rebuilt / name
    error = folder / ".error"
    assert not error.is_file(), f"results/{name}: {error.read_text()}"
    rc = (folder / ".rc").read_text()
    assert rc == "0", f"results/{name}: its command exited {rc} on the records"
    return folder


def _without_provenance(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in _PROVENANCE}


def _not_contained(old: Any, new: Any, where: str) -> list[str]:
    """Where the committed ``old`` is not in the rebuilt ``new``: every value committed must
    be the rebuilt one; a key that a later version of the command adds (a new measure, a new
    setting at its default) may be there beside them."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [w for k, v in old.items()
                for w in ([f"{where}/{k} (absent)"] if k not in new
                          else _not_contained(v, new[k], f"{where}/{k}"))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [w for k, (a, b) in enumerate(zip(old, new, strict=True))
                for w in _not_contained(a, b, f"{where}[{k}]")]
    same = old == new or (isinstance(old, float) and isinstance(new, float)
                          and math.isnan(old) and math.isnan(new))
    return [] if same else [f"{where or '/'} ({old!r} ≠ {new!r})"]


@pytest.mark.parametrize("name", FOLDERS)
def test_tables_are_rebuilt_from_records(rebuilt: Path, name: str) -> None:
    folder = _check_rebuilt(rebuilt, name)
    committed = [t for t in TABLES if (RESULTS / name / t).is_file()]
    assert committed, f"results/{name}: no table ({', '.join(TABLES)})"
    for table in committed:
        made = folder / table
        assert made.is_file(), f"results/{name}/{table}: its command did not write it"
        if table.endswith(".json"):
            old = json.loads((RESULTS / name / table).read_text())
            new = json.loads(made.read_text())
            differ = _not_contained(_without_provenance(old), new, "")
            assert not differ, (f"results/{name}/{table} differs from what its records give "
                                f"at {', '.join(differ[:5])}")
        else:
            assert made.read_text() == (RESULTS / name / table).read_text(), (
                f"results/{name}/{table} differs from what its records give: run "
                f"`{(RESULTS / name / 'command.txt').read_text().strip()}` to rewrite it")


def test_a_missing_record_fails_the_rebuild(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: a folder with one run's summary removed is not re-tabulated, and
    the run is named, not trained."""
    import hamixer.experiments.compare as compare
    from hamixer.cli.main import main

    name = "niter-digits"
    _copy_records(tmp_path / "results")
    (tmp_path / "results" / name / "symmixer_n2_8-niter3" / "seed2" / "summary.json").unlink()
    monkeypatch.setattr(compare, "run_jobs", from_records)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingRecord, match=r"record: symmixer_n2_8-niter3 seed 2$"):
        main(shlex.split((RESULTS / name / "command.txt").read_text())[1:])
    assert not (tmp_path / "results" / name / "results.md").exists()


# ----------------------------------------------------------------------------- README.md
_NUMBER = r"[−-]?\d+(?:\.\d+)?(?:e[−-]?\d+)?"
#: What counts as a measured number in the findings: a decimal, a power of ten, a count.
_MEASURED = re.compile(r"(?<![\w.])[−-]?(?:\d+\.\d+(?:e[−-]?\d+)?|\d+e[−-]?\d+)(?![\w.])"
                       r"|\b\d+ of \d+\b")
#: A setting, not a result: the λ of a model.
_SETTING = re.compile(r"λ\s*[=≤≥<>]\s*$")


def agrees(shown: str, value: float) -> bool:
    """``shown`` is ``value`` rounded to the digits it shows (``0.04`` is 0.035–0.045,
    ``6e-5`` is 5.5e-5–6.5e-5, ``1`` is 0.5–1.5)."""
    shown = shown.replace("−", "-")
    mantissa, _, exponent = shown.lower().partition("e")
    place = -len(mantissa.partition(".")[2]) + (int(exponent) if exponent else 0)
    return abs(value - float(shown)) <= 0.5 * 10.0 ** place * (1 + 1e-9) + 1e-12


@dataclass
class Findings:
    """README.md's findings: the text from "## Results" to the speed paragraph (whose numbers
    come from benchmarks/, not results/), and the spans of it that a claim has checked."""

    page: str
    text: str
    start: int
    claimed: list[tuple[int, int]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, page: str | None = None) -> Findings:
        page = README.read_text(encoding="utf-8") if page is None else page
        start = page.index("## Results")
        end = page.index("**Speed.**", start)
        return cls(page, page[start:end], start)

    def line_of(self, pos: int) -> int:
        return self.page.count("\n", 0, self.start + pos) + 1

    def after(self, anchor: str) -> int:
        pos = self.text.find(anchor)
        assert pos >= 0, f"README.md: {anchor!r} not found in the findings"
        return pos

    def _check(self, what: str, match: re.Match[str], values: Sequence[float]) -> None:
        shown = [(match.group(k), match.span(k)) for k in range(1, (match.lastindex or 0) + 1)]
        if len(shown) != len(values):
            self.failures.append(f"README.md:{self.line_of(match.start())}: {what} shows "
                                 f"{len(shown)} numbers, its records give {len(values)}")
            return
        for (text, span), value in zip(shown, values, strict=True):
            self.claimed.append(span)
            if not agrees(text, value):
                self.failures.append(f"README.md:{self.line_of(span[0])}: {what}: {text} where "
                                     f"the records give {value:.6g}")

    def prose(self, pattern: str, values: Sequence[float], what: str, near: str) -> None:
        """The numbers (the groups of ``pattern``, found after ``near``) are ``values``."""
        match = re.compile(pattern).search(self.text, self.after(near))
        assert match, f"README.md: {pattern!r} not found after {near!r}"
        self._check(what, match, values)

    def bound(self, pattern: str, value: float, what: str, near: str) -> None:
        """``value`` is at most the one number of ``pattern`` ("within 0.35 points"), or in the
        range of its two ("3–4 points"), at the digits shown."""
        match = re.compile(pattern).search(self.text, self.after(near))
        assert match, f"README.md: {pattern!r} not found after {near!r}"
        shown = [match.group(k) for k in range(1, (match.lastindex or 0) + 1)]
        low, high = (None, shown[0]) if len(shown) == 1 else shown
        self.claimed += [match.span(k) for k in range(1, len(shown) + 1)]
        ok = ((low is None or value >= float(low) or agrees(low, value))
              and (value <= float(high) or agrees(high, value)))
        if not ok:
            self.failures.append(f"README.md:{self.line_of(match.start())}: {what}: "
                                 f"{' to '.join(shown)} where the records give {value:.6g}")

    def row(self, first_cell: str, values: Sequence[float], near: str) -> None:
        """The numbers of the table row whose first cell starts with ``first_cell`` (the
        first such row after ``near``), cell by cell from the second, are ``values``."""
        line = re.compile(r"^\| " + re.escape(first_cell) + r"[^|]*\|(.*)$", re.M)
        match = line.search(self.text, self.after(near))
        assert match, f"README.md: no row {first_cell!r} after {near!r}"
        numbers = "".join(rf"(?:[^\d−-]|[−-](?!\d))*?({_NUMBER})"
                          for _ in range(len(re.findall(_NUMBER, match.group(1)))))
        inner = re.compile(numbers).match(self.text, match.start(1))
        assert inner
        self._check(f"row {first_cell!r}", inner, values)

    def unclaimed(self) -> list[str]:
        """The measured numbers that no claim checked."""
        out = []
        for match in _MEASURED.finditer(self.text):
            pos = match.start()
            line_start = self.text.rfind("\n", 0, pos) + 1
            line_end = self.text.find("\n", pos)
            line = self.text[line_start:line_end]
            following = self.text[line_end + 1:self.text.find("\n", line_end + 1)]
            if (_in_code(self.text, pos) or _SETTING.search(self.text[line_start:pos])
                    or (line.startswith("|") and following.startswith("|---"))):
                continue
            if not any(a <= pos < b for a, b in self.claimed):
                out.append(f"README.md:{self.line_of(pos)}: {match.group()} has no record in "
                           f"results/")
        return out


def _in_code(text: str, pos: int) -> bool:
    """Whether ``pos`` is inside an inline code span (a quoted command)."""
    paragraph = text.rfind("\n\n", 0, pos) + 2
    return text.count("`", paragraph, pos) % 2 == 1


# --------------------------------------------------------------------- from the records
# ``records``: the copy of results/ whose tables the commands rebuilt from the run records
def _results(records: Path, name: str) -> dict[str, Any]:
    return json.loads((records / name / "results.json").read_text())


def _rows(records: Path, name: str) -> dict[str, dict[str, Any]]:
    return {r["model"]: r for r in _results(records, name)["models"]}


def _sweep(records: Path, name: str) -> dict[str, Any]:
    return json.loads((records / name / "sweep.json").read_text())["aggregate"]


def _summary(records: Path, name: str, run: str) -> dict[str, Any]:
    return json.loads((records / name / run / "summary.json").read_text())


def _seeds(r: dict[str, Any], key: str = "best_test_acc") -> list[float]:
    """``[mean, std]`` over several seeds, ``[mean]`` for one, as the tables show them."""
    return [r[key], r[f"{key}_std"]] if r["n"] > 1 else [r[key]]


def _agg_seeds(r: dict[str, Any], key: str = "best_acc") -> list[float]:
    return [r[key], r[f"{key}_std"]] if r["n_seeds"] > 1 else [r[key]]


def _symmetry(records: Path, name: str, model: str, part_keys: Sequence[str],
              seeds: Sequence[int] | None = None) -> tuple[list[Any], list[Any]]:
    """Epoch-0 and final values of ``sym/mean.<key>`` (the mean over blocks) of ``seeds``
    (default: the folder's), mean ± std over several (``hamixer report``'s)."""
    from hamixer.experiments.report import symmetry_over_runs

    seeds = _results(records, name)["seeds"] if seeds is None else seeds
    found = symmetry_over_runs(model, [records / name / model / f"seed{s}" for s in seeds])
    assert found is not None and found[2] is not None, f"results/{name}/{model}: no measures"
    _, last, init = found
    return ([init[f"sym/mean.{k}"] for k in part_keys], [last[f"sym/mean.{k}"] for k in part_keys])


def _mean(v: Any) -> float:
    return v[0] if isinstance(v, tuple) else float(v)


def claim_finding1(f: Findings, records: Path) -> None:
    near = "--out results/compare-digits"
    rows = _rows(records, "compare-digits")
    for model in ("vanillamixer_n2_8", "paramixer_n2_8", "symmixer_n2_8", "asymmixer_n2_8"):
        r = rows[model]
        f.row(model, [r["params"] / 1e6, *_seeds(r), *_seeds(r, "final_test_acc")], near)
    seed0 = [_summary(records, "compare-digits", f"{m}_n2_8/seed0")["best_test_acc"]
             for m in ("vanillamixer", "paramixer", "symmixer", "asymmixer")]
    f.prose(r"vanillamixer (\S+), paramixer (\S+), symmixer (\S+), asymmixer (\S+) %", seed0,
            "make run's seed 0", "`make run` (seed 0)")


def claim_former_finding1(f: Findings, records: Path) -> None:
    near = "The same holds for attention"
    rows = _rows(records, "former-finding1")
    f.prose(r"tied, (\S+) M\) (\S+) ± (\S+),", [rows["symformer_m4_28"]["params"] / 1e6,
                                                *_seeds(rows["symformer_m4_28"])],
            "SymFormer's row", near)
    f.prose(r"ViT (\S+) ± (\S+), ParaFormer (\S+) ± (\S+), ParaMixer (\S+) ± (\S+) %",
            [v for m in ("vit_m4_28", "paraformer_m4_28", "paramixer_m4_28")
             for v in _seeds(rows[m])], "the references' rows", near)


def claim_former_finding3(f: Findings, records: Path) -> None:
    near = "The same for attention, started fully tied"
    finals = {m: _symmetry(records, "former-finding3", m, ("attn.vo_qk_cosine", "mlp.cosine"))[1]
              for m in ("paraformer_m4_28", "vit_m4_28")}
    f.prose(r"ends at (\S+) ± (\S+) \(ParaFormer\) and\s+(\S+) ± (\S+) \(ViT\)",
            [*finals["paraformer_m4_28"][0], *finals["vit_m4_28"][0]], "cos(VO, QK) at the end",
            near)
    f.prose(r"MLP cosine at (\S+) ± (\S+) and (\S+) ± (\S+)",
            [*finals["paraformer_m4_28"][1], *finals["vit_m4_28"][1]], "the MLP cosine at the end",
            near)


def claim_finding2(f: Findings, records: Path) -> None:
    near = "--out results/finding2`"
    agg = _sweep(records, "finding2")
    refs = agg["reference"]
    by = {(r["lambda"], r["breaking_init"]): r for r in agg["asym"]}
    xavier = sorted((r for r in agg["asym"] if r["breaking_init"] == "xavier"),
                    key=lambda r: -r["lambda"])
    f.row("best top-1 (%)", [*_agg_seeds(refs["sym"]), *(v for r in xavier for v in _agg_seeds(r)),
                             *_agg_seeds(refs["vanilla"]), *_agg_seeds(refs["para"])], near)
    f.row("‖W̃‖/‖W1ᵀ‖", [0.0, *(r["breaking_ratio"] for r in xavier)], near)
    sym = refs["sym"]["best_acc"]
    near_sym = [abs(r["best_acc"] - sym) for r in xavier if r["lambda"] >= 1e-2]
    f.bound(r"down to λ = 1e-2 AsymMixer stays within (\S+) points", max(near_sym),
            "the largest distance to SymMixer", "Reproduced for the path")
    above = [r["best_acc"] - sym for r in agg["asym"] if r["lambda"] >= 1]
    f.prose(r"from every start of W̃, (\S+)–(\S+) above it", [min(above), max(above)],
            "λ ≥ 1 above SymMixer", "Reproduced for the path")
    ends = [v for init in ("xavier", "zero", "free") for v in _agg_seeds(by[(0.0, init)])]
    f.prose(r"every start of W̃: (\S+) ± (\S+) \(Xavier[^)]*\),\s+(\S+) ± (\S+) \(`zero`\),\s+"
            r"(\S+) ± (\S+) %", ends, "λ = 0 from each start", "λ = 0, ParaMixer's")


def claim_former_finding2(f: Findings, records: Path) -> None:
    from hamixer.experiments.sweep import SWEEP_FAMILIES

    near = "The same path for attention"
    agg = _sweep(records, "former-finding2")
    refs = agg["reference"]
    by = {r["lambda"]: r for r in agg["asym"]}
    strong = [by[lam][k] for lam in (10.0, 1.0) for k in SWEEP_FAMILIES["former"].forms]
    f.prose(r"falls to (\S+)–(\S+) of its tied", [min(strong), max(strong)],
            "λ = 10's and 1's breaking ratios", near)
    f.prose(r"SymFormer's \((\S+) ± (\S+) and (\S+) ± (\S+) against (\S+) ± (\S+) %\)",
            [*_agg_seeds(by[10.0]), *_agg_seeds(by[1.0]), *_agg_seeds(refs["sym"])],
            "λ = 10 and 1 against SymFormer", near)
    f.prose(r"(\S+) points below ParaFormer \((\S+) ± (\S+) against (\S+) ± (\S+) %\)",
            [refs["para"]["best_acc"] - by[0.0]["best_acc"], *_agg_seeds(by[0.0]),
             *_agg_seeds(refs["para"])], "λ = 0 against ParaFormer", near)


def claim_finding3(f: Findings, records: Path) -> None:
    near = "--out results/init-symmetric-digits"
    rows = _rows(records, "init-symmetric-digits")
    for model in ("vanillamixer_n2_8", "paramixer_n2_8", "symmixer_n2_8"):
        # the accuracy over both seeds, the measures of seed 0 (as the table's caption says)
        cos0, cos = _symmetry(records, "init-symmetric-digits", model,
                              ("token.cosine", "channel.cosine"), seeds=[0])
        anti0, anti = _symmetry(records, "init-symmetric-digits", model,
                                ("token.coupling_antisym", "channel.coupling_antisym"), seeds=[0])
        f.row(model, [*_seeds(rows[model]), *cos0, *cos, *anti0, *anti], near)
    _, vanilla = _symmetry(records, "finding3-symstart", "vanillamixer_m4_28",
                           ("token.cosine", "channel.cosine"))
    _, para = _symmetry(records, "finding3-symstart", "paramixer_m4_28",
                        ("token.cosine", "channel.cosine"))
    f.prose(r"end at cosines (\S+) / (\S+)\s+\(vanilla\) and (\S+) / (\S+) \(ParaMixer\)",
            [*map(_mean, vanilla), *map(_mean, para)], "the free Mixers' final cosines",
            "At full budget")
    _, vit = _symmetry(records, "vit-fmnist-symstart", "vit_m4_28", ("mlp.cosine",))
    f.prose(r"ViT at the Mixers' size at (\S+) ± (\S+)", list(vit[0]), "the ViT's final cosine",
            "At full budget")


def claim_repeated_blocks(f: Findings, records: Path) -> None:
    digits = {(r["architecture"], r["n_iter"]): r
              for r in _results(records, "niter-digits")["models"]}
    sym1, sym3 = digits[("symmixer_n2_8", 1)], digits[("symmixer_n2_8", 3)]
    f.prose(r"\((\S+) ± (\S+) → (\S+) ± (\S+) %\)", [*_seeds(sym1), *_seeds(sym3)],
            "SymMixer from n_iter 1 to 3", "**Repeated blocks.**")
    f.bound(r"SymMixer gains (\d+)–(\d+) points", sym3["best_test_acc"] - sym1["best_test_acc"],
            "SymMixer's gain", "**Repeated blocks.**")
    loss = [digits[(m, 1)]["best_test_acc"] - digits[(m, 3)]["best_test_acc"]
            for m in ("vanillamixer_n2_8", "paramixer_n2_8")]
    f.prose(r"lose about (\S+)–(\S+),", [min(loss), max(loss)], "the free Mixers' loss",
            "**Repeated blocks.**")
    descent = sym3["descent"]
    f.prose(r"\((\d+) of (\d+) at n_iter 3", [descent["lowered"], descent["applications"]],
            "SymMixer's energy descent", "**Repeated blocks.**")
    fm = {(r["architecture"], r["n_iter"]): r for r in _results(records, "niter-fmnist")["models"]}
    moves = [max(r["best_test_acc"] for (a, _), r in fm.items() if a == m)
             - min(r["best_test_acc"] for (a, _), r in fm.items() if a == m)
             for m in {a for a, _ in fm}]
    f.bound(r"no model moves by more than (\S+) points", max(moves), "the largest move",
            "On Fashion-MNIST at full budget")
    f.prose(r"\(SymMixer (\S+) →\s+(\S+) → (\S+) %\)",
            [fm[("symmixer_m4_28", n)]["best_test_acc"] for n in (1, 2, 3)],
            "SymMixer by n_iter", "On Fashion-MNIST at full budget")
    d3 = fm[("symmixer_m4_28", 3)]["descent"]
    f.prose(r"at all (\d+) of (\d+) applications", [d3["lowered"], d3["applications"]],
            "SymMixer's energy descent", "On Fashion-MNIST at full budget")


CLAIMS: tuple[Callable[[Findings, Path], None], ...] = (
    claim_finding1, claim_former_finding1, claim_finding2, claim_former_finding2,
    claim_finding3, claim_former_finding3, claim_repeated_blocks)


def _claimed(page: str, records: Path) -> Findings:
    f = Findings.read(page)
    for claim in CLAIMS:
        try:
            claim(f, records)
        except FileNotFoundError as err:  # the folder a finding quotes has no such record
            f.failures.append(f"README.md: {claim.__name__}: no record "
                              f"results/{Path(err.filename).relative_to(records)}")
    return f


@pytest.fixture(scope="module")
def findings(rebuilt: Path) -> Findings:
    return _claimed(README.read_text(encoding="utf-8"), rebuilt)


def test_readme_numbers_are_the_records(findings: Findings) -> None:
    assert not findings.failures, "\n".join(findings.failures)


def test_every_readme_result_has_a_record(findings: Findings) -> None:
    missing = findings.unclaimed()
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("shown, value, ok", [
    ("98.33", 98.334, True), ("98.33", 98.336, False), ("6e-5", 6.4e-5, True),
    ("6e-5", 6.6e-5, False), ("1", 1.0000000002, True), ("0", 0.0, True), ("0.04", 0.046, False),
    ("−0.026", -0.0262, True)])
def test_agrees_at_the_digits_shown(shown: str, value: float, ok: bool) -> None:
    assert agrees(shown, value) is ok


def test_an_altered_readme_number_fails(rebuilt: Path) -> None:
    """The checks can fail: one digit changed in a finding's row is reported with the
    records' value, and a number added to the findings that no record backs is reported."""
    text = README.read_text(encoding="utf-8")
    row = re.search(r"^\| symmixer_n2_8 \| 0\.075 M \| (\d+\.\d+)", text, re.M)
    assert row, "README.md: finding 1's SymMixer row"
    line = text.count("\n", 0, row.start()) + 1
    shown = f"{float(row.group(1)) + 0.01:.2f}"
    altered = text[:row.start(1)] + shown + text[row.end(1):]
    failures = _claimed(altered, rebuilt).failures
    assert [e for e in failures if e.startswith(f"README.md:{line}:")] == [
        f"README.md:{line}: row 'symmixer_n2_8': {shown} where the records give "
        f"{_rows(rebuilt, 'compare-digits')['symmixer_n2_8']['best_test_acc']:.6g}"]
    anchor = "**Repeated blocks.**"
    added = text.replace(anchor, anchor + " (about 12.5 % faster)")
    assert _claimed(added, rebuilt).unclaimed() == [
        f"README.md:{text.count(chr(10), 0, text.index(anchor)) + 1}: 12.5 has no record in "
        "results/"]

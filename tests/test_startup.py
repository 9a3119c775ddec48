"""What importing hamixer costs: the command line's help and the HAM library come without
the heavy packages, and the family is still in timm's registry whenever timm is imported.

Each check runs in a fresh interpreter (this one has imported everything already).
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import hamixer

SRC = str(Path(hamixer.__file__).resolve().parents[1])


def run_python(code: str) -> str:
    """Run ``code`` in a new interpreter on this tree's hamixer (warnings are errors); return
    its stdout, or fail with its stderr."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [SRC, *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


HEAVY = "('torch', 'timm', 'torchvision', 'matplotlib', 'numpy', 'hamixer.models')"


def test_help_of_every_command_imports_no_heavy_package():
    out = run_python(f"""
        import sys
        from hamixer.cli.main import build_parser
        parser = build_parser()
        parser.format_help()
        sub = next(a for a in parser._actions if a.dest == "command")
        for name, command in sub.choices.items():
            command.format_help()
        print(len(sub.choices), [m for m in {HEAVY} if m in sys.modules])
    """)
    n_commands, loaded = out.split(maxsplit=1)
    assert int(n_commands) >= 10
    assert loaded.strip() == "[]"


def test_hamixer_help_and_train_help_import_no_torch():
    for argv in (["--help"], ["train", "--help"]):
        out = run_python(f"""
            import sys
            from hamixer.cli import main
            try:
                main({argv!r})
            except SystemExit as done:
                assert done.code == 0, done.code
            print("LOADED", [m for m in {HEAVY} if m in sys.modules])
        """)
        assert "usage: hamixer" in out
        assert out.splitlines()[-1] == "LOADED []", argv


def test_the_ham_library_imports_no_timm_and_no_mixer():
    out = run_python("""
        import sys
        import hamixer.ham
        print([m for m in ("timm", "torchvision", "hamixer.models", "hamixer.train")
               if m in sys.modules])
    """)
    assert out.strip() == "[]"


def test_import_hamixer_is_light_and_timm_imported_after_it_knows_the_family():
    out = run_python("""
        import sys
        import hamixer
        assert "torch" not in sys.modules and "timm" not in sys.modules, "not lazy"
        import timm
        model = timm.create_model("symmixer_n2_8", num_classes=3)
        print(type(model).__name__, model.model_name, model.head.out_features,
              timm.is_model("imixer_n2_8"), timm.is_model("vit_m4_28"))
    """)
    assert out.split() == ["HamMixer", "symmixer_n2_8", "3", "True", "True"]


def test_timm_imported_before_hamixer_knows_the_family():
    out = run_python("""
        import timm
        assert not timm.is_model("paramixer_n2_8")
        import hamixer
        print(type(timm.create_model("paramixer_n2_8")).__name__)
    """)
    assert out.strip() == "HamMixer"


def test_lazy_attributes_resolve_on_first_use():
    out = run_python("""
        import sys
        import hamixer
        from hamixer import create_model
        model = create_model("symmixer_n2_8")
        print(type(model).__name__, hamixer.list_models("symmixer_n2_8"),
              hamixer.models.HamMixer is type(model), "load_external" in dir(hamixer))
        try:
            hamixer.no_such_thing
        except AttributeError as err:
            print(err)
    """)
    assert out.splitlines() == [
        "HamMixer ['symmixer_n2_8'] True True",
        "module 'hamixer' has no attribute 'no_such_thing'"]


def test_the_sweep_help_copy_of_the_breaking_inits_is_the_models_own():
    from hamixer.cli.sweep import HELP_BREAKING_INITS
    from hamixer.models.mixer import BREAKING_INITS

    assert HELP_BREAKING_INITS == BREAKING_INITS

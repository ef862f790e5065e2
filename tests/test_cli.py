import pytest

from forgetir.cli import main


def test_models_lists_every_variant(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name, params in [
        ("promptir", "35,592,263"),
        ("adair", "28,784,824"),
        ("moceir", "25,353,796"),
        ("moceir-s", "11,477,752"),
        ("promptir-tiny", ""),
        ("adair-tiny", ""),
        ("moceir-tiny", ""),
    ]:
        assert name in out and params in out


def test_methods_and_degradations_list(capsys):
    assert main(["methods"]) == 0
    assert "accurate-forgetting" in capsys.readouterr().out
    assert main(["degradations"]) == 0
    assert "denoise_25" in capsys.readouterr().out


def test_unknown_option_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--bogus"])
    assert "--bogus" in capsys.readouterr().err


def test_input_error_names_the_option(capsys):
    assert main(["train", "--out", "/nonexistent/x", "optim.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert "optim.lrr" in err and "optim.lr" in err


def test_overrides_on_both_sides_of_an_option(capsys, tmp_path):
    # Parsing only: an unknown key after --quiet must reach the config loader.
    assert main(["train", "train.steps=1", "--quiet", "bogus.key=1", "--out", str(tmp_path)]) == 2
    assert "unknown key(s) bogus" in capsys.readouterr().err


def test_argparse_lives_only_in_the_cli_package():
    # The library takes typed options; parsing a command line is cli/'s alone (issue 25).
    import re
    from pathlib import Path

    import forgetir

    root = Path(forgetir.__file__).parent
    uses = re.compile(r"^\s*(import|from) argparse\b", re.M)
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p.parent.name != "cli" and uses.search(p.read_text())
    ]
    assert offenders == []


def test_python_dash_m_forgetir_runs_the_cli():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "forgetir", "degradations"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "denoise_25" in done.stdout

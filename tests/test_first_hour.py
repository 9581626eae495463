"""What a newcomer met in the first hour, each small thing as it now reads: help texts, table
headings, "did you mean", what a command says it wrote, the repository's own files."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import ESCALATE, ROOT

VENEZUELA = ROOT / "scenarios" / "venezuela.yaml"
VARIANTS = ROOT / "scenarios" / "forecasting" / "venezuela-variants.yaml"


def test_help_and_exact_tables_say_what_they_show(cli):
    """`run --help` prints 95%, not 95%%; an exact table claims no ± it does not show, and an
    exact sweep prints no column of zero standard errors."""
    assert "the 95% interval half-width" in " ".join(cli("run", "--help").stdout.split())
    solved = cli("solve", VENEZUELA)
    assert "Stages (times in days)" in solved.stdout and "±" not in solved.stdout
    swept = cli("sweep", VENEZUELA, "--vary", "war_mean=60:120:2", "--metric",
                "p_reached:full_scale_war")  # fmt: skip
    assert swept.exit_code == 0 and "_se" not in swept.stdout


def test_names_get_a_suggestion_or_the_list(cli):
    """A misspelt or partial name gets the names it may mean; a name like none of them, the
    scenario's list."""
    partial = cli("run", VENEZUELA, "-n", "10", "--precision", "0.1", "--metric", "p_reached:war")
    assert partial.exit_code == 2
    assert "did you mean 'full_scale_war' or 'protracted_war' or 'new_cold_war'?" in (
        partial.stderr
    )
    unknown = cli("run", VENEZUELA, "-n", "10", "--set", "nosuch=3")
    assert unknown.exit_code == 2
    assert "unknown parameter 'nosuch' (the scenario's 38: seizure_mean, invasion_mean," in (
        unknown.stderr
    )


def test_commands_with_out_say_what_they_wrote(tmp_path):
    """sweep, sensitivity and schema -o say what they wrote, as the other commands do."""
    commands = {
        "sweep": ["sweep", VENEZUELA, "--vary", "war_mean=60:120:2", "--metric",
                  "p_reached:full_scale_war", "--out", tmp_path / "sweep"],
        "sensitivity": ["sensitivity", VENEZUELA, "--method", "oat", "--out",
                        tmp_path / "sensitivity"],
        "schema": ["schema", "-o", tmp_path / "schema.json"],
    }  # fmt: skip
    for name, args in commands.items():
        done = subprocess.run([ESCALATE, *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert f"{name} written: {args[-1]}" in done.stderr


def test_comparison_tables_show_variant_names_whole():
    done = subprocess.run([ESCALATE, "compare", VENEZUELA, VARIANTS], capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "signal_no_invasion_over_mobilization" in done.stdout and "…" not in done.stdout


@pytest.mark.parametrize("folder", ["calibrated", "drivers", "news", "options"])
def test_the_readme_flows_leave_the_repository_clean(folder):
    """The folders the README's flows write in the project's root are ignored by git."""
    assert f"--out {folder}" in (ROOT / "README.md").read_text()
    ignored = subprocess.run(["git", "check-ignore", "-q", f"{folder}/summary.json"], cwd=ROOT)
    assert ignored.returncode == 0


def test_the_license_the_package_declares_is_there():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert 'license = { file = "LICENSE" }' in (ROOT / "pyproject.toml").read_text()

"""The library names Python parameters in its messages; the command line shows the flags."""

from __future__ import annotations

import pickle

import pytest

import escalate
from escalate.cli import main
from escalate.cli._options import FLAGS
from escalate.engine.checkpoint import Checkpoint
from escalate.errors import EscalateError

from ..conftest import ROOT

TUTORIAL = ROOT / "scenarios" / "tutorial.yaml"
VENEZUELA = ROOT / "scenarios" / "venezuela.yaml"


def _library_error(call) -> EscalateError:
    with pytest.raises(EscalateError) as info:
        call()
    return info.value


# (what a notebook calls, the message it reads, the same mistake on the command line, and what
# the command line prints: the message with the flag in place of the parameter)
CASES = [
    (
        lambda: escalate.solve(escalate.load(VENEZUELA), horizon=-5),
        "horizon must be a positive number, got -5",
        ["solve", VENEZUELA, "--horizon", "-5"],
        "error: --horizon must be a positive number, got -5\n",
    ),
    (
        lambda: escalate.solve(escalate.load(VENEZUELA), overrides={"seizure_man": 1}),
        "overrides seizure_man: unknown parameter 'seizure_man'; did you mean 'seizure_mean'?",
        ["solve", VENEZUELA, "--set", "seizure_man=1"],
        "error: --set seizure_man: unknown parameter 'seizure_man'; did you mean 'seizure_mean'?\n",
    ),
    (
        lambda: escalate.simulate(escalate.load(TUTORIAL), 1000, seed=1, precision=0.01),
        "precision and metric go together",
        ["run", TUTORIAL, "-n", "1000", "--precision", "0.01"],
        "error: --precision and --metric go together\n",
    ),
    (  # an error wrapped by the sweep keeps its parameter after the point it names
        lambda: escalate.sweep(
            escalate.load(TUTORIAL), {"talks_mean": [-10, 10]}, ["p_reached:war"]
        ),
        "at talks_mean=-10: overrides: transitions[0].mean must be positive, "
        "but parameter 'talks_mean' is -10",
        ["sweep", TUTORIAL, "--vary", "talks_mean=-10:10:2", "--metric", "p_reached:war"],
        "error: at talks_mean=-10: --set: transitions[0].mean must be positive, "
        "but parameter 'talks_mean' is -10\n",
    ),
    (
        lambda: escalate.sweep(escalate.load(TUTORIAL), {"talks_man": [1, 2]}, ["p_reached:war"]),
        "vary talks_man: unknown parameter 'talks_man'; did you mean 'talks_mean'?",
        ["sweep", TUTORIAL, "--vary", "talks_man=1:2:2", "--metric", "p_reached:war"],
        "error: --vary talks_man: unknown parameter 'talks_man'; did you mean 'talks_mean'?\n",
    ),
]


@pytest.mark.parametrize(("call", "message", "args", "printed"), CASES)
def test_library_names_the_parameter_and_the_cli_the_flag(cli, call, message, args, printed):
    error = _library_error(call)
    assert str(error) == message
    assert "--" not in str(error)
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr == printed


def test_seed_message_names_the_parameter():
    error = _library_error(lambda: escalate.simulate(escalate.load(TUTORIAL), 1000, seed=-1))
    assert str(error) == "seed must be a non-negative integer, got -1"
    assert error.parameter == "seed"
    assert error.naming(FLAGS) == "--seed must be a non-negative integer, got -1"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: escalate.draw_worlds(escalate.load(TUTORIAL), 1, seed=1),
            "worlds must be at least 2, got 1",
        ),
        (
            lambda: escalate.sensitivity(escalate.load(TUTORIAL), "p_reached:war", samples=1),
            "samples must be at least 2, got 1",
        ),
        (
            lambda: escalate.sensitivity(escalate.load(TUTORIAL), "p_reached:war", method="x"),
            "method must be one of sobol, morris, oat, got 'x'",
        ),
        (
            lambda: escalate.sweep(escalate.load(TUTORIAL), {}, ["p_reached:war"]),
            "vary takes one or two parameters",
        ),
        (
            lambda: escalate.sweep(escalate.load(TUTORIAL), {"talks_mean": [1, 2]}, []),
            "metrics must name at least one metric",
        ),
    ],
)
def test_messages_the_command_line_never_reaches(call, message):
    """Refused by click before the library sees them; the library still speaks Python."""
    assert str(_library_error(call)) == message


def test_checkpoint_of_another_job(tmp_path):
    path = tmp_path / "job.checkpoint.jsonl"
    path.write_text('{"job": {"command": "other"}}\n', encoding="utf-8")
    error = _library_error(lambda: Checkpoint(path, {"command": "sweep"}, resume=True))
    for resume, text in (("resume", str(error)), ("--resume", error.naming(FLAGS))):
        assert text == (
            f"{resume}: the checkpoint {path} belongs to a different job (scenario, grid, "
            f"metrics or seed changed); run without {resume} to start again"
        )


def test_an_error_keeps_its_parameters_through_pickle_and_context():
    """A Dask task's error crosses a pickle; a sweep or a world puts its context first."""
    error = EscalateError.about("{precision} and {metric} go {}, not {!r}", "together", "{x}")
    assert str(error) == "precision and metric go together, not '{x}'"
    assert error.parameter == "precision"
    wrapped = pickle.loads(pickle.dumps(error.within("world 3: ")))
    assert str(wrapped) == "world 3: precision and metric go together, not '{x}'"
    assert wrapped.naming(FLAGS) == "world 3: --precision and --metric go together, not '{x}'"
    assert EscalateError("no parameter here").naming(FLAGS) == "no parameter here"
    with pytest.raises(ValueError, match="does not start with the parameter"):
        EscalateError("got -1", parameter="seed")


def test_every_flag_of_the_mapping_is_a_flag_of_a_command():
    flags = {opt for command in main.commands.values() for p in command.params for opt in p.opts}
    assert set(FLAGS.values()) <= flags


def test_the_cli_lists_the_sensitivity_methods_of_the_library():
    from escalate.analysis.sensitivity import METHODS
    from escalate.cli._sensitivity import METHODS as CLI_METHODS

    assert CLI_METHODS == METHODS

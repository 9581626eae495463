"""``python -m escalate``: the command line."""

from escalate.cli import entry

entry()

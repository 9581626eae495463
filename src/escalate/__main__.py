"""``python -m escalate``: the command line."""

from escalate.cli import main

main()

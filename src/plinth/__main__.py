"""``python -m plinth``: the same as the ``plinth`` command."""

from plinth.cli import main

main()

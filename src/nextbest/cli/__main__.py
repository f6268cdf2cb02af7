"""`python -m nextbest.cli` runs the `nextbest` command."""

from nextbest.cli.main import main

main()

"""The `nextbest` command."""

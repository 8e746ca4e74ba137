"""C{python -m ismon ...} is the C{ismon} command."""

from ismon.cli import main

main()

"""C{python -m ismon ...} is the C{ismon} command."""

from ismon.entry import main

main()

"""
Coverage-guided fuzzing of every ismon parser that reads outside input
(docs/fuzzing.md).

  - L{tests.fuzz.targets}: the one table, target name -> one-input function,
    declared exceptions, seed corpus; the only module here that imports ismon;
  - L{tests.fuzz.harness}: what every target shares (the input envelope,
    whole-versus-split comparison, retained-memory checks, the side-effect
    guard), standard library only;
  - L{tests.fuzz.run}: one atheris process for one target (what libFuzzer
    drives), with the per-input time bound;
  - C{python -m tests.fuzz}: the command that runs it, collects crashes and
    prints the figures (L{tests.fuzz.__main__}).

Importing this package imports nothing else: pytest and trial walk it.
"""

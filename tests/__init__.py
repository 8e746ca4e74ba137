"""
ismon's tests.  pytest and trial (C{python -m twisted.trial tests}) both
import this package first, so what is set up here holds for both runners.

Property tests draw the same examples on every run (derandomize), keep no
example database between runs, and have no per-example deadline nor
"too slow" health check: a loaded machine must not turn a pass into a
failure.  bench/ imports tests.servers without needing hypothesis.
"""

try:
    from hypothesis import HealthCheck, settings
except ImportError:
    pass
else:
    settings.register_profile(
        "ismon",
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.load_profile("ismon")

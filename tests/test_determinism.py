"""
The suite's own rule that no test depends on luck (see tests/__init__.py):
the property-test profile is in force under either runner.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from twisted.trial.unittest import SynchronousTestCase


class HypothesisProfileTests(SynchronousTestCase):
    def test_profile_loaded(self) -> None:
        current = settings()
        self.assertTrue(current.derandomize)
        self.assertIsNone(current.database)
        self.assertIsNone(current.deadline)
        self.assertIn(HealthCheck.too_slow, current.suppress_health_check)

"""Hypothesis profiles for the property tests.

``HYPOTHESIS_PROFILE=fast`` (the default) keeps ``make test`` quick;
``HYPOTHESIS_PROFILE=deep`` runs 20000 examples per property for a long search.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("fast", max_examples=100, deadline=None)
settings.register_profile(
    "deep",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

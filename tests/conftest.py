"""Suite-wide settings: hypothesis profiles sized for running on every change.

``HYPOTHESIS_PROFILE=thorough`` runs ten times the examples, for a local deep run.
Deadlines are off: CI shares two cores, and a slow example is not a failure.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "thorough",
    parent=settings.get_profile("default"),
    max_examples=1000,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

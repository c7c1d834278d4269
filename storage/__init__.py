"""Rows and nothing else: typed models (:mod:`storage.models`), engines and UTC time
(:mod:`storage.db`), queries (:mod:`storage.repo`) and Alembic migrations (:mod:`storage.migrate`).
No channel, no Flask, no clock: callers pass ``now``."""

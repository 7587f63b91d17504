# The real Synapse homeserver, one per test session (tests/support/synapse.py).
from tests.support.synapse import synapse  # noqa: F401

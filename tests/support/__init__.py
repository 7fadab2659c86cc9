"""Test support: launchers of the real services the tests use, and the helpers they share."""

"""Scenario sweeps: prepare once, sweep many scenarios (issue 18)."""

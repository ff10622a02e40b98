"""Activation: sync definitions, the consent-checking planner, destinations and the records."""

"""Destinations: one module each; each takes the rows to send and returns one outcome per row."""

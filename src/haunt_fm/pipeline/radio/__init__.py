"""Endless radio on a speaker: batches of recommendations that keep ahead of the listener."""

"""Answering guests from the hotel's own knowledge: its FAQ answers and which department does what."""

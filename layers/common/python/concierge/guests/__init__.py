"""Guests and their stays' data: registration, erasure on request, retention."""

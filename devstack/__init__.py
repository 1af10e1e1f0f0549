"""Runs Concierge on one machine: moto for AWS, a WAHA simulator, and the real handlers."""

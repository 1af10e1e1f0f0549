"""Concierge's domain: guests, their WhatsApp conversations, and the WAHA integration."""

from concierge import init_phase

# First thing a function's module loads of ours: in Lambda, no garbage collection while the rest loads (until
# the module's last line, init_phase.end()).
init_phase.begin()

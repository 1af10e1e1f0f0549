"""Concierge's domain: guests, their WhatsApp conversations, and the WAHA integration."""

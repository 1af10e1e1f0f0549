"""What WAHA sends us: the webhook's payload models and its signature."""

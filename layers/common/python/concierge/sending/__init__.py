"""Getting messages out: the outbound queue, the sender, pacing, the WAHA client, guests' files."""

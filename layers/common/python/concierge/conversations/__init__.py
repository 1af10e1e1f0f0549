"""A guest's conversation: storing messages, what the bot says back, staff, ticks, the list and the history."""

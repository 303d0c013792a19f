"""Talking to one terminal: sync and push over one device session."""

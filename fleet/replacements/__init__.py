"""Which terminals must be replaced, why, how urgently, by when, at what cost."""

"""The shared core every domain builds on: database, models, audit, policy, masking,
file reading, values."""

"""Merchant notices: outbox, contact rules, texts, dispatch, verification."""

"""Remind me later: one email, when the reader asked for it, unless they gave since."""

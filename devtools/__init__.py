"""Development and test tooling; never imported by the production app."""

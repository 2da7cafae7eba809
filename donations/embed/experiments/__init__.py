"""A/B tests of the ask: variants with traffic shares, assigned in the reader's browser."""

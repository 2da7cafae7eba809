"""The ask and the checkout a reader goes through."""

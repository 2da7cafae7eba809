"""The ask's configuration (copy, currencies, amounts, payment methods), edited by admins.

Below the areas that show the ask (``support``, ``reminders``, ``embed``) so
each of them can read it without depending on the others.
"""

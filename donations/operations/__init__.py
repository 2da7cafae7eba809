"""Operations that span several areas (erasure, ...), above the areas they orchestrate.

An area knows only its own records and those of the areas below it (see the
README's Architecture section); what must touch mail, payments, reminders and
supporters at once lives here, and the views and commands call it.
"""

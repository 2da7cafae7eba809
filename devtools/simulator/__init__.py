"""localstripe, adapted to speak the API version our SDK pins.

See :mod:`devtools.simulator.adapt` for every difference this covers.
"""

"""The ask where readers are: ``/embed.js``, its cacheable configuration, and what it counts."""

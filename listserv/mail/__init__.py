"""Mail as data, at the bottom of the tree: the message codec (bytes to ``EmailMessage`` and
back with one policy), addresses, header values, list headers, readable text of a body, and
the template loader. Pure functions; no database, no network, nothing from the layers above.
"""

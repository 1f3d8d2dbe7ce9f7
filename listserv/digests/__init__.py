"""Digests: the posts a list distributed, gathered into numbered issues.

- ``schedule``: when an issue is due and how it is numbered (pure).
- ``format``: the :class:`~listserv.digests.format.Issue` and what every format shares;
  ``mime``, ``plain`` (RFC 1153) and ``html`` build one message each from an issue, with
  ``bodies`` making posts readable. These are pure: they never read the database or send.
- ``issues``: keeping posts for the next issue, the list's digest state, and building and
  queueing due issues (through ``delivery.outbound``) in one transaction each.

May import mail, store and delivery (and config, app); never posting or anything above it.
"""

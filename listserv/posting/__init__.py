"""A post to ``NAME@domain``: the pipeline runs the rule chain, then holds, refuses or drops
the post, or decorates it and queues it for every member (and the digest).

A rule (``rules``) is a pure function ``Post -> Decision | None``, with a name and a one-line
reason; ``rules.CHAIN`` is the ordered table of rules and the first decision wins. Decorations
(``decorate``) are pure functions on a message. ``hold`` announces a held post, ``aliases``
keeps the DMARC-munged posters' reply addresses, ``accepted`` the senders moderators accepted
for good.
"""

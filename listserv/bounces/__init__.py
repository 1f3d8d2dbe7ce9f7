"""Bounces: finding dead addresses without punishing members for someone else's post.

- ``reports``: reading bounce reports into classified failures (pure: a message in, a list of
  ``Failure`` out).
- ``scores``: how a failure moves a member's score, and a member's delivery state (pure).
- ``actions``: acting on failures — bounces to ``NAME-bounces``, refusals at delivery, probes,
  disabling and the warnings; writes members and member events, queues mail through
  ``delivery.outbound`` and ``notices``.
- ``upkeep``: the periodic pass that forgets old scores and reminds, then removes, disabled
  members.
- ``feedback``: feedback loop (ARF) complaints.

May import mail, store, auth and delivery (and config, app, notices); never posting or anything
above it.
"""

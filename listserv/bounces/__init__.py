"""Mail that came back: reading bounce reports (DSN, flufl.bounce) and ARF complaints, scoring
each member's failures, probing before disabling, warning and removing, and the periodic
upkeep of those scores. Triggered by the ``-bounces`` address and by refusals at delivery.
"""

"""Digests: distributed posts are kept for the list's next issue (``schedule.add_to_digest``),
issues are sent on the list's schedule or when full, and ``format`` builds each issue as MIME
(RFC 2046), plain (RFC 1153) or HTML. Building an issue is pure; sending goes through the one
outbound queue.
"""

"""What members ask by mail: ``-request`` commands (``parse`` reads them, ``request`` answers
them), ``-join``/``-leave``, subscriptions that wait for confirmation, and ``confirm``: the one
table of what each kind of token does when it comes back; and ``roster``, the direct changes
an owner makes (portal, API, command line) without the member's confirmation.
"""

"""Delivery: the one way out. Everything the server sends is queued here and sent from here.

- ``outbound``: ``queue_mail`` (and ``send`` for a list's mail), the only way to send: stores a
  message, DKIM-signed, with its recipients in batches, in the caller's transaction.
- ``worker``: the claimer and the workers that send due batches and record what became of
  every recipient (retries with back-off, failures counted like bounces).
- ``senders``: where a worker sends a batch: the smarthost (``smtp_client``) or the outbox
  directory.
- ``personalize``: per-recipient copies (VERP, one-click unsubscribe) made at send time.
- ``queue_admin``: the operator's view of the queue (``queue status``, ``queue retry``).

May import mail, store and auth (and config, app). Delivery decides nothing about members:
refused recipients are recorded and handed on through ``App.on_refused`` (the server sets it)
to be counted as bounces. Nothing here knows about bounces, posting, digests or commands.
"""

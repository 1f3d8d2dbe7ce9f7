"""The one way out. ``outbound.queue_mail`` (and ``send`` for list mail) stores a message
and its recipient batches in the transaction that decided to send it; delivery workers claim
batches, send them through the smarthost (``smtp_client``) or the outbox folder, and record
the outcome. Personalized copies are made here, per recipient. Delivery knows nothing of
bounces: refusals are reported through ``App.on_refused``, which the server sets.
"""

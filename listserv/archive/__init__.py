"""Archives: every post a list distributes, kept as distributed, threaded and searchable.

``store`` writes archived posts (in the posting transaction) and removes or erases them;
``threading`` decides which post answers which (pure functions); ``words`` turns text into the
stemmed words the full-text index holds; ``search`` asks SQLite FTS5 or PostgreSQL for them;
``render`` turns stored bytes into what a page shows; ``mbox`` reads and writes mbox files.
Archive imports only delivery, auth, store and mail; posting, web and cli import it.
"""

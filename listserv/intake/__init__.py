"""One way in. ``smtp`` receives mail over SMTP or LMTP, refuses at RCPT what no handler
would take, and stores each accepted message before answering 250 (``committer``: concurrent
sessions' messages in one commit). ``routing`` claims stored messages, runs their checks side
by side and routes them in order per address; ``router`` hands each to the handler its address
names (``router.HANDLERS``). A handler is a function
``(app, session, mlist, stored) -> str`` that does all its work in the given transaction (which
may route other messages too) and
returns a one-line outcome ("failed: …" marks the message failed). ``owner`` forwards the
``-owner`` address. ``xforward`` finds the real client behind a trusted MTA (XFORWARD, else
its Received: header) for SPF; ``journal`` logs and counts what intake accepts and refuses.
"""

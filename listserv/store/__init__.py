"""What is kept: engines and sessions (``db``), the tables (``models``) and their
migrations, and the small operations on them every stage shares: lists, members, tokens,
claims (which process works on which row), the post log, the portal's sessions, sign-in
links and rate limits (``portal``) and API keys. It may import ``mail`` and
``config`` only; it sends nothing and decides nothing.
"""

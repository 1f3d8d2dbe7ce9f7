"""Deciding held posts: one ``decisions.settle`` for every way a moderator decides (reply by
mail, the command line, later the web), the expiry of unanswered holds and reminders
(``expiry``), and the words of a verdict read from a reply (``verdicts``).
"""

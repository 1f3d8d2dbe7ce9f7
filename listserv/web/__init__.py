"""The HTTP side: today the one-click unsubscribe endpoint (RFC 8058). Routes call the same
functions as mail and the command line; GET and HEAD never change anything.
"""

"""``listserv``: the command line, one module per command group. Commands call the packages
below and write no SQL of their own; errors are one line and a non-zero exit.
"""

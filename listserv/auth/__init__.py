"""Who sent it and who we are: authentication of incoming mail (DKIM, SPF, DMARC,
Authentication-Results), DKIM and ARC signing of outgoing mail, the DMARC policy lookup,
the DNS resolver, and the signed one-click links. Imports ``store``, ``mail``, ``config``.
"""

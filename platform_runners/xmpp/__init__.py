"""The ``xmpp`` platform: an XMPP client per connection (slixmpp) in the shared persistent pool.

- :mod:`.config`: credentials to an :class:`~.config.XmppConfig` (host, port, TLS);
- :mod:`.client`: one XMPP connection with an async method per verb;
- :mod:`.events`: incoming stanzas to Sockethub's activity shapes;
- :mod:`.platform`: the Sockethub verbs over pooled clients.
"""

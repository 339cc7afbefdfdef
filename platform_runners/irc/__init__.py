"""The IRC platform: an asyncio IRC client and the Sockethub ``irc`` verbs on top of it."""

"""Runtime plumbing every process shares: settings, Kafka and Redis clients, the schema
registry client, the credential store, logging, heap tuning and metrics helpers.

It stands on the wire contract (``schemas``) and under the gateway and the runners, which
both import it; it imports neither of them.
"""

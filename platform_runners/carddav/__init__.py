"""The ``carddav`` platform: address books and contacts on a CardDAV server."""

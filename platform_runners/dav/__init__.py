"""What the ``caldav`` and ``carddav`` platforms share: the DAV client, its XML and discovery."""

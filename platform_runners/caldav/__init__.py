"""The ``caldav`` platform: calendars, events and tasks on a CalDAV server."""

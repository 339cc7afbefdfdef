"""Adapters over the transport libraries (python-socketio, python-engineio, uvicorn,
websockets). Every use of a library internal lives in this package."""

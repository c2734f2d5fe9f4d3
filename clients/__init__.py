"""Clients: the web page (clients/web) and a Python aiortc client."""

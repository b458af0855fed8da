"""A local, Smartcar-compatible vehicle cloud: Connect, tokens, the v2.0 API and a control API.

Its own process (`python -m simulator`); it shares no code with the Django apps.
"""

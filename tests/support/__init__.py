"""Test support: a real PostgreSQL server, the gateway as a subprocess, wire helpers."""

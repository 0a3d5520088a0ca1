"""Entry point of the PostgreSQL protocol plugin (group ``hoopd.protocols``)."""

from .engine import PostgresEngine

PLUGIN = PostgresEngine()

"""Backups that restore: `marlin backup DEST` and `marlin restore SRC` (docs/deploy.md).

A backup is a directory: ``manifest.json``, the database dump under ``database/``, the data
directory's files under ``data/`` (exports; mirrors and the demo's source with --with-mirrors)
and the audit checkpoint file under ``audit/``. The manifest lists every file with its SHA-256,
the schema's applied migrations, the row count of every table and the ids of the keys the data
needs, never a key; it is signed with the audit key. Restore checks all of that before it
writes anything, and writes only into an empty database and data directory.
"""
